from spectropol.logs import to_file
from spectropol.stages.report import source_figures

with to_file(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    source_figures(i.moments, i.peaks, i.candidates, i.catalogue, {"maps": o.maps, "spectra": o.spectra})
