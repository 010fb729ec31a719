from spectropol.logs import to_file
from spectropol.options import SelectionOptions
from spectropol.stages.inspect import fingerprint_ms

with to_file(snakemake.log[0], snakemake.config.get("run")):
    fingerprint_ms(snakemake.input.ms, snakemake.output.record, snakemake.params.spws,
                   SelectionOptions(**snakemake.params.selection))
