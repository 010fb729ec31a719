from spectropol.logs import to_file
from spectropol.moments import export_moment_fits

with to_file(snakemake.log[0]):
    export_moment_fits(snakemake.input.moments, dict(zip(map(tuple, snakemake.params.maps), snakemake.output.fits)))
