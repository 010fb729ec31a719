# Cube: channel images gathered into one Zarr cube, and FITS cubes per Stokes; or, with
# input.cubes, the cube made from FITS images made elsewhere (nothing is imaged then).


if PLAN.cubes:

    rule cube_from_fits:
        input:
            # the images' files: a new or changed one remakes the cube (file times, as for any input)
            fits=PLAN.inputs,
            freqs=PLAN.cubes.get("freqs") or [],
        output:
            cube=CUBE_METADATA,
            qa=CUBE_QA,
        params:
            code=code("cube_from_fits.py"),
            stokes={s: PLAN.cubes[s] for s in "IQUV" if s in PLAN.cubes},
            chunk_px=PLAN.cube.chunk_px,
            shard=PLAN.cube.shard,
        log:
            f"{LOGS}/cube_from_fits.log",
        benchmark:
            f"{LOGS}/benchmark/cube_from_fits.tsv"
        threads: 1
        resources:
            runtime=PLAN.cube_runtime(),
            mem_mb=PLAN.cube_mem_mb(),
        conda:
            "../envs/spectropol.yaml"
        script:
            "../scripts/cube_from_fits.py"

else:

    rule gather_cube:
        input:
            images=expand(f"{RESULTS}/channels/{{block}}", block=PLAN.blocks),
            selection=rules.inspect_ms.output.selection,
        output:
            # update(): Snakemake keeps the cube, and only changed planes are rewritten (the store's
            # metadata file stands for it: see CUBE_METADATA in common.smk).
            cube=update(CUBE_METADATA),
            qa=CUBE_QA,
        params:
            code=code("gather_cube.py"),
            stores=PLAN.channel_image_stores(),
            options=as_dict(PLAN.cube),
            freqs_hz=PLAN.freqs_hz.tolist(),
            sources=channel_sources(),
        log:
            f"{LOGS}/gather_cube.log",
        benchmark:
            f"{LOGS}/benchmark/gather_cube.tsv"
        threads: 1
        resources:
            runtime=PLAN.cube_runtime(),
            mem_mb=PLAN.cube_mem_mb(),
        conda:
            "../envs/spectropol.yaml"
        script:
            "../scripts/gather_cube.py"


rule export_cube_fits:
    input:
        cube=CUBE_METADATA,
    output:
        # update(): kept, so that only the planes that changed in the cube are rewritten in place
        **{stokes: update(path) for stokes, path in PLAN.cube_fits_paths().items()},
    params:
        code=code("export_cube_fits.py"),
    log:
        f"{LOGS}/export_cube_fits.log",
    benchmark:
        f"{LOGS}/benchmark/export_cube_fits.tsv"
    threads: 1
    resources:
        runtime=PLAN.cube_runtime(),
        mem_mb=PLAN.cube_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_cube_fits.py"
