from spectropol.logs import to_file
from spectropol.split import plan_split

with to_file(snakemake.log[0]):
    p = snakemake.params
    plan_split(snakemake.input.ms, snakemake.output.selection, column=p.column, spw=p.spw, field=p.field,
               size=p.size, cell_arcsec=p.cell_arcsec, pixels_per_beam=p.pixels_per_beam)
