from spectropol.logs import to_file
from spectropol.stages.report import faraday_figures, map_figures

with to_file(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    map_figures(i.moments, i.peaks, i.catalogue, {"maps": o.maps, "moments": o.moments, "peak_rm": o.peak_rm})
    faraday_figures(i.peaks, i.candidates, i.catalogue, {"rmsf": o.rmsf, "spectra": o.spectra})
