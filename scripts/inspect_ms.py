from spectropol.io.fingerprint import input_paths
from spectropol.logs import to_file
from spectropol.options import GeometryOptions, SelectionOptions
from spectropol.stages.inspect import inspect_ms

with to_file(snakemake.log[0], snakemake.config.get("run")):
    p = snakemake.params
    paths = input_paths(list(snakemake.input.ms), list(snakemake.input.fingerprints))
    inspect_ms(list(zip(paths, p.spws)), snakemake.output.selection, SelectionOptions(**p.selection),
               GeometryOptions(**p.geometry))
