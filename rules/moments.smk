# Moments: Faraday moments of Q, U and P across frequency (Farnes et al. 2018), Dask over spatial tiles.
from spectropol.stages.moments import MOMENT_MAPS


rule faraday_moments:
    input:
        cube=CUBE,
    output:
        moments=directory(f"{RESULTS}/moments/moments.zarr"),
        qa=f"{RESULTS}/qa/moments.json",
    params:
        options=as_dict(PLAN.moments),
        dask=as_dict(PLAN.dask),
    log:
        "logs/faraday_moments.log",
    benchmark:
        "logs/benchmark/faraday_moments.tsv"
    threads: PLAN.dask.threads
    resources:
        runtime=120,
        mem_mb=lambda wc, threads: PLAN.moments_mem_mb(threads),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/faraday_moments.py"


rule export_moment_fits:
    input:
        moments=rules.faraday_moments.output.moments,
    output:
        **{f"{q}_{m}": path for (q, m), path in PLAN.moment_fits().items()},
    params:
        maps=[list(qm) for qm in MOMENT_MAPS],
    log:
        "logs/export_moment_fits.log",
    benchmark:
        "logs/benchmark/export_moment_fits.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_moment_fits.py"
