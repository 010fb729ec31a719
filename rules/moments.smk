# Moments: FITS maps of the Faraday moments of I, Q, U and P across frequency (Farnes et al. 2018),
# which faraday_depth (rules/faraday.smk) computes in its pass over the cube.
from spectropol.stages.moments import MOMENT_MAPS


rule export_moment_fits:
    input:
        moments=rules.faraday_depth.output.moments,
    output:
        **{f"{q}_{m}": path for (q, m), path in PLAN.moment_fits().items()},
    params:
        code=code("export_moment_fits.py"),
        maps=[list(qm) for qm in MOMENT_MAPS],
    log:
        f"{LOGS}/export_moment_fits.log",
    benchmark:
        f"{LOGS}/benchmark/export_moment_fits.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_moment_fits.py"
