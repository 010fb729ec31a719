from spectropol.logs import to_file
from spectropol.stages.report import catalogue_table

with to_file(snakemake.log[0], snakemake.config.get("run")):
    catalogue_table(snakemake.input.catalogue, snakemake.output.table)
