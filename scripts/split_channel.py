from spectropol.io.fingerprint import input_ms
from spectropol.logs import to_file
from spectropol.stages.split import split_block

with to_file(snakemake.log[0]):
    split_block(snakemake.input.selection, input_ms(dict(snakemake.input.items())), snakemake.params.channels,
                snakemake.output.vis, snakemake.output.qa, width=snakemake.params.width,
                ionosphere_rm=snakemake.input.ionosphere_rm or None, rule=snakemake.rule)
