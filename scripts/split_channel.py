from spectropol.logs import to_file
from spectropol.split import load_plan, split_channel

with to_file(snakemake.log[0]):
    selection, _ = load_plan(snakemake.input.selection)
    split_channel(selection, int(snakemake.wildcards.chan), snakemake.output.vis, snakemake.output.qa,
                  ionosphere_rm=snakemake.input.ionosphere_rm or None)
