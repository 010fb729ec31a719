# Faraday depth: RM synthesis, RM-CLEAN and peak maps over the cube's Q and U, Dask over spatial
# tiles with the whole spectral axis in each.


def fdf_for_peaks():
    if config["faraday"]["clean"]:
        return f"{RESULTS}/faraday/fdf_clean.zarr"
    return f"{RESULTS}/faraday/fdf_dirty.zarr"


def faraday_fits_products():
    kinds = ["dirty", "clean"] if config["faraday"]["clean"] else ["dirty"]
    names = [f"fdf_{kind}_{part}" for kind in kinds for part in ("real", "imag", "amplitude")]
    names += ["rmsf"] + FARADAY_PEAK_MAPS
    return {name: f"{RESULTS}/faraday/{name}.fits" for name in names}


def faraday_products():
    return [f"{RESULTS}/faraday/peaks.zarr"] + list(faraday_fits_products().values())


def faraday_mem_mb(wildcards, threads):
    """One tile per Dask worker, three times over for inputs, outputs and temporaries."""
    return int(600 + 3 * config["faraday"]["chunk_mb"] * threads)


rule rm_synthesis:
    input:
        cube=rules.gather_cube.output.cube,
    output:
        fdf=directory(f"{RESULTS}/faraday/fdf_dirty.zarr"),
        qa=f"{RESULTS}/qa/rm_synthesis.json",
    params:
        weighting=config["faraday"]["weighting"],
        dphi=config["faraday"]["dphi"],
        phi_max=config["faraday"]["phi_max"],
        oversample=config["faraday"]["oversample"],
        chunk_mb=config["faraday"]["chunk_mb"],
        scheduler=config["dask"]["scheduler"],
    log:
        "logs/rm_synthesis.log",
    benchmark:
        "logs/benchmark/rm_synthesis.tsv"
    threads: config["dask"]["threads"]
    resources:
        runtime=120,
        mem_mb=faraday_mem_mb,
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
        cutoff_sigma=config["faraday"]["clean_cutoff_sigma"],
        gain=config["faraday"]["clean_gain"],
        max_iter=config["faraday"]["clean_max_iter"],
        chunk_mb=config["faraday"]["chunk_mb"],
        scheduler=config["dask"]["scheduler"],
    log:
        "logs/rm_clean.log",
    benchmark:
        "logs/benchmark/rm_clean.tsv"
    threads: config["dask"]["threads"]
    resources:
        runtime=120,
        mem_mb=faraday_mem_mb,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/rm_clean.py"


rule faraday_peaks:
    input:
        fdf=fdf_for_peaks(),
    output:
        peaks=directory(f"{RESULTS}/faraday/peaks.zarr"),
        qa=f"{RESULTS}/qa/faraday_peaks.json",
    params:
        chunk_mb=config["faraday"]["chunk_mb"],
        scheduler=config["dask"]["scheduler"],
    log:
        "logs/faraday_peaks.log",
    benchmark:
        "logs/benchmark/faraday_peaks.tsv"
    threads: config["dask"]["threads"]
    resources:
        runtime=120,
        mem_mb=faraday_mem_mb,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/faraday_peaks.py"


rule export_faraday_fits:
    input:
        dirty=rules.rm_synthesis.output.fdf,
        clean=rules.rm_clean.output.fdf if config["faraday"]["clean"] else [],
        peaks=rules.faraday_peaks.output.peaks,
    output:
        **faraday_fits_products(),
    log:
        "logs/export_faraday_fits.log",
    benchmark:
        "logs/benchmark/export_faraday_fits.tsv"
    threads: 1
    resources:
        runtime=120,
        mem_mb=lambda wc: int(600 + 2 * config["faraday"]["chunk_mb"]),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_faraday_fits.py"
