from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.stages.report import source_figures

with to_file(snakemake.log[0], snakemake.config.get("run")):
    i, o = snakemake.input, snakemake.output
    source_figures(i.moments, i.peaks, i.candidates, i.catalogue, {"maps": o.maps, "spectra": o.spectra},
                   brightest=snakemake.params.brightest, cube_store=store_of(i.cube),
                   spectra_path=i.spectra)
