from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.stages.primary_beam import primary_beam_of_cube

with to_file(snakemake.log[0], snakemake.config.get("run")):
    primary_beam_of_cube(store_of(snakemake.input.cube), snakemake.params.model, list(snakemake.params.ms),
                         snakemake.output.beam)
