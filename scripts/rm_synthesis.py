from spectropol.logs import to_file
from spectropol.options import DaskOptions, RMSynthesisOptions
from spectropol.stages.faraday import rm_synthesis

with to_file(snakemake.log[0]):
    rm_synthesis(snakemake.input.cube, snakemake.output.fdf, snakemake.output.qa,
                 RMSynthesisOptions(**snakemake.params.options), DaskOptions(**snakemake.params.dask),
                 rule=snakemake.rule)
