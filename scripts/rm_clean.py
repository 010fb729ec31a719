from spectropol.faraday_cube import rm_clean_cube
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    p = snakemake.params
    rm_clean_cube(snakemake.input.fdf, snakemake.output.fdf, snakemake.output.qa, cutoff_sigma=p.cutoff_sigma, gain=p.gain,
                  max_iter=p.max_iter, chunk_mb=p.chunk_mb, scheduler=p.scheduler, nthreads=snakemake.threads)
