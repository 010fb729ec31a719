from spectropol.cube import gather_cube
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    p = snakemake.params
    gather_cube(snakemake.input.images, snakemake.output.cube, snakemake.output.qa, chunk=p.chunk, image=p.image,
                common_beam=p.common_beam)
