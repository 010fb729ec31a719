from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.options import CatalogueOptions
from spectropol.stages.catalogue import CATALOGUE_FILES, build_catalogue

with to_file(snakemake.log[0], snakemake.config.get("run")):
    build_catalogue(store_of(snakemake.input.cube), snakemake.input.moments, snakemake.input.peaks,
                    {kind: snakemake.output[kind] for kind in CATALOGUE_FILES}, snakemake.output.qa,
                    CatalogueOptions(**snakemake.params.options | {"primary_beam_fits": snakemake.input.get("beam")}),
                    rule=snakemake.rule)
