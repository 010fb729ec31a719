from spectropol.logs import to_file
from spectropol.moments import faraday_moments

with to_file(snakemake.log[0]):
    faraday_moments(snakemake.input.cube, snakemake.output.moments, snakemake.output.qa,
                    weighting=snakemake.params.weighting, chunk_mb=snakemake.params.chunk_mb,
                    scheduler=snakemake.params.scheduler, nthreads=snakemake.threads)
