from spectropol.cube import gather_cube
from spectropol.logs import to_file
from spectropol.split import load_plan

with to_file(snakemake.log[0]):
    p = snakemake.params
    selection, _ = load_plan(snakemake.input.selection)
    # The cube is an update() output: Snakemake keeps it, and only changed planes are rewritten.
    gather_cube(p.stores, snakemake.output.cube, snakemake.output.qa, chunk=p.chunk, image=p.image,
                common_beam=p.common_beam, spectral_window=selection.freqs, update=True)
