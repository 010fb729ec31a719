from spectropol.logs import to_file
from spectropol.options import ChannelSettings
from spectropol.stages.image import image_block

with to_file(snakemake.log[0], snakemake.config.get("run")):
    p = snakemake.params
    image_block(snakemake.input.selection, snakemake.input.vis, p.channels,
                [ChannelSettings.from_dict(s) for s in p.settings],
                snakemake.output.image, snakemake.output.qa, width=p.width, nthreads=snakemake.threads,
                keep=p.images, rule=snakemake.rule)
