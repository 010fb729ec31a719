# Cube: channel images gathered into one Zarr cube, and FITS cubes per Stokes.


rule gather_cube:
    input:
        images=expand(f"{RESULTS}/channels/{{block}}", block=PLAN.blocks),
        selection=rules.inspect_ms.output.selection,
    output:
        # update(): Snakemake keeps the cube, and only changed planes are rewritten.
        cube=update(directory(f"{RESULTS}/cube/cube.zarr")),
        qa=f"{RESULTS}/qa/cube.json",
    params:
        stores=PLAN.channel_image_stores(),
        options=as_dict(PLAN.cube),
        freqs_hz=PLAN.freqs_hz.tolist(),
        sources=channel_sources(),
    log:
        "logs/gather_cube.log",
    benchmark:
        "logs/benchmark/gather_cube.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=PLAN.cube_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/gather_cube.py"


rule export_cube_fits:
    input:
        cube=rules.gather_cube.output.cube,
    output:
        **PLAN.cube_fits_paths(),
    log:
        "logs/export_cube_fits.log",
    benchmark:
        "logs/benchmark/export_cube_fits.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=PLAN.cube_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_cube_fits.py"
