from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.stages.cube import cube_from_fits

with to_file(snakemake.log[0], snakemake.config.get("run")):
    p = snakemake.params
    cube_from_fits(p.stokes, store_of(snakemake.output.cube), snakemake.output.qa,
                   freqs_file=snakemake.input.freqs or None, chunk_px=p.chunk_px, shard=p.shard,
                   rule=snakemake.rule)
