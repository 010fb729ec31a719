from spectropol.logs import to_file
from spectropol.options import DaskOptions, MomentsOptions
from spectropol.stages.moments import faraday_moments

with to_file(snakemake.log[0]):
    faraday_moments(snakemake.input.cube, snakemake.output.moments, snakemake.output.qa,
                    MomentsOptions(**snakemake.params.options), DaskOptions(**snakemake.params.dask),
                    rule=snakemake.rule)
