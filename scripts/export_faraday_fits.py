from spectropol.logs import to_file
from spectropol.stages.faraday import export_faraday_fits

with to_file(snakemake.log[0]):
    export_faraday_fits(snakemake.input.dirty, snakemake.input.clean or None, snakemake.input.peaks,
                        dict(snakemake.output.items()))
