# Cube: channel images gathered into one Zarr cube, and FITS cubes per Stokes.


rule gather_cube:
    input:
        images=expand(f"{RESULTS}/channels/{{block}}", block=BLOCKS),
        selection=rules.inspect_ms.output.selection,
    output:
        cube=update(directory(f"{RESULTS}/cube/cube.zarr")),
        qa=f"{RESULTS}/qa/cube.json",
    params:
        stores=channel_image_stores(),
        chunk=config["cube"]["chunk"],
        image=cube_image(),
        common_beam=config["cube"]["common_beam"],
    log:
        "logs/gather_cube.log",
    benchmark:
        "logs/benchmark/gather_cube.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=cube_mem_mb,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/gather_cube.py"


rule export_cube_fits:
    input:
        cube=rules.gather_cube.output.cube,
    output:
        fits=expand(f"{RESULTS}/cube/cube_{{stokes}}.fits", stokes=STOKES),
    params:
        stokes=STOKES,
    log:
        "logs/export_cube_fits.log",
    benchmark:
        "logs/benchmark/export_cube_fits.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=cube_mem_mb,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_cube_fits.py"
