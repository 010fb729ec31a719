from spectropol.imaging import image_channel
from spectropol.logs import to_file
from spectropol.split import load_plan

with to_file(snakemake.log[0]):
    _, geometry = load_plan(snakemake.input.selection)
    imaging = {k: v for k, v in snakemake.params.imaging.items() if k != "size"}
    image_channel(snakemake.input.vis, snakemake.output.image, snakemake.output.qa, npix=geometry["npix"],
                  cell_rad=geometry["cell_rad"], wcs=geometry["wcs"], nthreads=snakemake.threads,
                  clean=snakemake.params.clean, **imaging)
