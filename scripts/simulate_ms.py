from spectropol.logs import to_file
from spectropol.options import SimulateOptions
from spectropol.stages.simulate import simulate

with to_file(snakemake.log[0], snakemake.config.get("run")):
    simulate(snakemake.output.ms, snakemake.input.skymodel, snakemake.input.layout,
             SimulateOptions(**snakemake.params.options))
