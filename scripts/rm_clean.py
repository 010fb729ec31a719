from spectropol.logs import to_file
from spectropol.options import DaskOptions, RMCleanOptions
from spectropol.stages.faraday import rm_clean

with to_file(snakemake.log[0]):
    rm_clean(snakemake.input.fdf, snakemake.output.fdf, snakemake.output.qa, RMCleanOptions(**snakemake.params.options),
             DaskOptions(**snakemake.params.dask), rule=snakemake.rule)
