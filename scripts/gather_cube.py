from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.options import CubeOptions
from spectropol.stages.cube import gather_cube

with to_file(snakemake.log[0], snakemake.config.get("run")):
    p = snakemake.params
    # The cube (declared by its zarr.json) is an update() output: only changed planes are rewritten.
    gather_cube(p.stores, store_of(snakemake.output.cube), snakemake.output.qa, CubeOptions(**p.options),
                spectral_window=p.freqs_hz, sources=p.sources, update=True, rule=snakemake.rule)
