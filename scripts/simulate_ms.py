from spectropol.logs import to_file
from spectropol.simulate import simulate_ms

with to_file(snakemake.log[0]):
    simulate_ms(snakemake.output.ms, snakemake.input.skymodel, snakemake.input.layout, **snakemake.params.observation)
