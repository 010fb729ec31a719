from spectropol.io.fingerprint import input_ms
from spectropol.logs import to_file
from spectropol.options import GeometryOptions, SelectionOptions
from spectropol.stages.inspect import inspect_ms

with to_file(snakemake.log[0]):
    p = snakemake.params
    inspect_ms(input_ms(dict(snakemake.input.items())), snakemake.output.selection, SelectionOptions(**p.selection),
               GeometryOptions(**p.geometry))
