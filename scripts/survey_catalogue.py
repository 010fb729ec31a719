from spectropol.logs import to_file
from spectropol.stages.survey import FieldProducts, merge_catalogues

with to_file(snakemake.log[0], snakemake.config.get("run")):
    merge_catalogues([FieldProducts(**f) for f in snakemake.params.fields], dict(snakemake.output),
                     results_dir=snakemake.params.results_dir)
