from spectropol.logs import to_file
from spectropol.stages.moments import export_moment_fits

with to_file(snakemake.log[0], snakemake.config.get("run")):
    export_moment_fits(snakemake.input.moments,
                       {tuple(qm): snakemake.output[f"{qm[0]}_{qm[1]}"] for qm in snakemake.params.maps})
