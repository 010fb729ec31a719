from pathlib import Path

from spectropol.imaging import image_channel
from spectropol.logs import to_file
from spectropol.split import load_plan

with to_file(snakemake.log[0]):
    _, geometry = load_plan(snakemake.input.selection)
    image_dir, qa_dir = Path(snakemake.output.image), Path(snakemake.output.qa)
    image_dir.mkdir(parents=True, exist_ok=True)
    qa_dir.mkdir(parents=True, exist_ok=True)
    for channel, settings in zip(snakemake.params.channels, snakemake.params.settings):
        name = f"{channel:0{snakemake.params.width}d}"
        imaging = {k: v for k, v in settings["imaging"].items() if k != "size"}
        image_channel(Path(snakemake.input.vis) / f"{name}.zarr", image_dir / f"{name}.zarr", qa_dir / f"{name}.json",
                      npix=geometry["npix"], cell_rad=geometry["cell_rad"], wcs=geometry["wcs"],
                      nthreads=snakemake.threads, clean=settings["clean"], **imaging)
