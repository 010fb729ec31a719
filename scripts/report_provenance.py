from spectropol.logs import to_file
from spectropol.stages.report import provenance_page

with to_file(snakemake.log[0], snakemake.config.get("run")):
    provenance_page(dict(snakemake.params.config), snakemake.params.workflow_dir, snakemake.output.page,
                    snakemake.output.summary)
