# Faraday depth: RM synthesis, RM-CLEAN and peak maps over the cube's Q and U, Dask over spatial
# tiles with the whole spectral axis in each; FITS exports of every product.
from spectropol.stages.faraday import faraday_fits_names


rule rm_synthesis:
    input:
        cube=rules.gather_cube.output.cube,
    output:
        fdf=directory(f"{RESULTS}/faraday/fdf_dirty.zarr"),
        qa=f"{RESULTS}/qa/rm_synthesis.json",
    params:
        options=as_dict(PLAN.rm_synthesis),
        dask=as_dict(PLAN.dask),
    log:
        "logs/rm_synthesis.log",
    benchmark:
        "logs/benchmark/rm_synthesis.tsv"
    threads: PLAN.dask.threads
    resources:
        runtime=120,
        mem_mb=lambda wc, threads: PLAN.faraday_mem_mb(threads),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/rm_synthesis.py"


rule rm_clean:
    input:
        fdf=rules.rm_synthesis.output.fdf,
    output:
        fdf=directory(f"{RESULTS}/faraday/fdf_clean.zarr"),
        qa=f"{RESULTS}/qa/rm_clean.json",
    params:
        options=as_dict(PLAN.rm_clean) if PLAN.rm_clean else None,
        dask=as_dict(PLAN.dask),
    log:
        "logs/rm_clean.log",
    benchmark:
        "logs/benchmark/rm_clean.tsv"
    threads: PLAN.dask.threads
    resources:
        runtime=120,
        mem_mb=lambda wc, threads: PLAN.faraday_mem_mb(threads),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/rm_clean.py"


rule faraday_peaks:
    input:
        # Peaks of the clean FDF when RM-CLEAN runs, else of the dirty one.
        fdf=rules.rm_clean.output.fdf if PLAN.rm_clean else rules.rm_synthesis.output.fdf,
        # Q and U, to evaluate each peak exactly rather than between grid samples.
        cube=rules.gather_cube.output.cube,
    output:
        peaks=directory(f"{RESULTS}/faraday/peaks.zarr"),
        qa=f"{RESULTS}/qa/faraday_peaks.json",
    params:
        options=as_dict(PLAN.peaks),
        dask=as_dict(PLAN.dask),
    log:
        "logs/faraday_peaks.log",
    benchmark:
        "logs/benchmark/faraday_peaks.tsv"
    threads: PLAN.dask.threads
    resources:
        runtime=120,
        mem_mb=lambda wc, threads: PLAN.faraday_mem_mb(threads),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/faraday_peaks.py"


rule export_faraday_fits:
    input:
        dirty=rules.rm_synthesis.output.fdf,
        clean=rules.rm_clean.output.fdf if PLAN.rm_clean else [],
        peaks=rules.faraday_peaks.output.peaks,
    output:
        **PLAN.faraday_fits(faraday_fits_names(clean=PLAN.rm_clean is not None)),
    log:
        "logs/export_faraday_fits.log",
    benchmark:
        "logs/benchmark/export_faraday_fits.tsv"
    threads: 1
    resources:
        runtime=120,
        mem_mb=PLAN.faraday_fits_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_faraday_fits.py"
