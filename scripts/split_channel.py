from spectropol.io.fingerprint import input_paths
from spectropol.logs import to_file
from spectropol.options import SplitOptions
from spectropol.stages.split import split_block

with to_file(snakemake.log[0], snakemake.config.get("run")):
    p = snakemake.params
    (ms,) = input_paths(list(snakemake.input.ms), list(snakemake.input.fingerprints))
    split_block(snakemake.input.selection, ms, p.source["ms_index"], p.source["spw"], p.channels,
                p.source["spw_channels"], snakemake.output.vis, snakemake.output.qa, width=p.width,
                options=SplitOptions(**p.options), ionosphere_rm=snakemake.input.ionosphere_rm or None,
                rule=snakemake.rule)
