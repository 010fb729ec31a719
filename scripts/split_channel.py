from pathlib import Path

from spectropol.logs import to_file
from spectropol.split import load_plan, split_channel

with to_file(snakemake.log[0]):
    selection, _ = load_plan(snakemake.input.selection)
    vis_dir, qa_dir = Path(snakemake.output.vis), Path(snakemake.output.qa)
    vis_dir.mkdir(parents=True, exist_ok=True)
    qa_dir.mkdir(parents=True, exist_ok=True)
    for channel in snakemake.params.channels:
        name = f"{channel:0{snakemake.params.width}d}"
        split_channel(selection, channel, vis_dir / f"{name}.zarr", qa_dir / f"{name}.json",
                      ionosphere_rm=snakemake.input.ionosphere_rm or None)
