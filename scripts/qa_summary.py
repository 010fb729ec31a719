from spectropol.logs import to_file
from spectropol.options import QAOptions
from spectropol.stages.qa import qa_summary

with to_file(snakemake.log[0], snakemake.config.get("run")):
    qa_summary(list(snakemake.input), snakemake.output.summary, snakemake.output.plot,
               QAOptions(**snakemake.params.options))
