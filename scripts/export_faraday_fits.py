from spectropol.logs import to_file
from spectropol.stages.faraday import export_faraday_fits

with to_file(snakemake.log[0], snakemake.config.get("run")):
    export_faraday_fits(snakemake.input.peaks, dict(snakemake.output.items()),
                        dirty_store=snakemake.input.dirty or None, clean_store=snakemake.input.clean or None)
