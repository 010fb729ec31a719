from spectropol.faraday_cube import export_faraday_fits
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    export_faraday_fits(snakemake.input.dirty, snakemake.input.clean or None, snakemake.input.peaks, dict(snakemake.output.items()))
