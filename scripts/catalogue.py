from spectropol.catalogue import build_catalogue
from spectropol.logs import to_file

with to_file(snakemake.log[0]):
    outputs = {kind: snakemake.output[kind] for kind in ("votable", "fits", "ecsv", "csv", "skymodel")}
    p = snakemake.params
    build_catalogue(snakemake.input.cube, snakemake.input.moments, snakemake.input.peaks, outputs, snakemake.output.qa,
                    threshold_sigma=p.threshold_sigma, min_snr=p.min_snr, box=p.box)
