from spectropol.logs import to_file
from spectropol.options import CubeOptions
from spectropol.stages.cube import gather_cube
from spectropol.stages.inspect import read_inspection

with to_file(snakemake.log[0]):
    selection, _ = read_inspection(snakemake.input.selection)
    # The cube is an update() output: Snakemake keeps it, and only changed planes are rewritten.
    gather_cube(snakemake.params.stores, snakemake.output.cube, snakemake.output.qa,
                CubeOptions(**snakemake.params.options),
                spectral_window=selection.freqs, update=True, rule=snakemake.rule)
