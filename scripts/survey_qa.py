from spectropol.logs import to_file
from spectropol.stages.survey import FieldProducts, survey_quality

with to_file(snakemake.log[0], snakemake.config.get("run")):
    survey_quality([FieldProducts(**f) for f in snakemake.params.fields], snakemake.output.qa, snakemake.output.plot,
                   min_snr=snakemake.params.min_snr, merged_catalogue=snakemake.input.merged)
