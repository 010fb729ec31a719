from spectropol.faraday_cube import faraday_peaks
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    p = snakemake.params
    faraday_peaks(snakemake.input.fdf, snakemake.output.peaks, snakemake.output.qa, chunk_mb=p.chunk_mb,
                  scheduler=p.scheduler, nthreads=snakemake.threads)
