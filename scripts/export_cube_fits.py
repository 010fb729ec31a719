from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.stages.cube import export_cube_fits

with to_file(snakemake.log[0], snakemake.config.get("run")):
    export_cube_fits(store_of(snakemake.input.cube), dict(snakemake.output.items()))
