from spectropol.io.stores import store_of
from spectropol.logs import to_file
from spectropol.stages.report import field_figures

with to_file(snakemake.log[0], snakemake.config.get("run")):
    i, o = snakemake.input, snakemake.output
    field_figures(i.moments, i.peaks, {"moments": o.moments, "peak_rm": o.peak_rm, "rmsf": o.rmsf},
                  cube_store=store_of(i.cube))
