from spectropol.faraday_cube import rm_synthesis_cube
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    p = snakemake.params
    rm_synthesis_cube(snakemake.input.cube, snakemake.output.fdf, snakemake.output.qa, weighting=p.weighting, dphi=p.dphi,
                      phi_max=p.phi_max, oversample=p.oversample, chunk_mb=p.chunk_mb, scheduler=p.scheduler,
                      nthreads=snakemake.threads)
