from spectropol.cube import export_fits_cubes
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    export_fits_cubes(snakemake.input.cube, dict(zip(snakemake.params.stokes, snakemake.output.fits)))
