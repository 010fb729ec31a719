from spectropol.logs import to_file
from spectropol.options import DaskOptions, PeaksOptions
from spectropol.stages.faraday import faraday_peaks

with to_file(snakemake.log[0]):
    faraday_peaks(snakemake.input.fdf, snakemake.output.peaks, snakemake.output.qa,
                  PeaksOptions(**snakemake.params.options),
                  DaskOptions(**snakemake.params.dask), cube_store=snakemake.input.cube, rule=snakemake.rule)
