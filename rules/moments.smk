# Faraday moments of Q, U and P across frequency (Farnes et al. 2018), Dask over spatial tiles.


rule faraday_moments:
    input:
        cube=rules.gather_cube.output.cube,
    output:
        moments=directory(f"{RESULTS}/moments/moments.zarr"),
        qa=f"{RESULTS}/qa/moments.json",
    params:
        weighting=config["moments"]["weighting"],
        chunk_mb=config["moments"]["chunk_mb"],
        scheduler=config["dask"]["scheduler"],
    log:
        "logs/faraday_moments.log",
    benchmark:
        "logs/benchmark/faraday_moments.tsv"
    threads: config["dask"]["threads"]
    resources:
        runtime=120,
        # Dask holds about one tile per thread, with headroom for the scheduler and the output.
        mem_mb=lambda wc, threads: int(500 + 3 * config["moments"]["chunk_mb"] * threads),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/faraday_moments.py"


rule export_moment_fits:
    input:
        moments=rules.faraday_moments.output.moments,
    output:
        fits=expand(f"{RESULTS}/moments/{{quantity}}_{{moment}}.fits", quantity=QUANTITIES, moment=MOMENTS),
    params:
        maps=[(q, m) for q in QUANTITIES for m in MOMENTS],
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
