# Image: weighted dirty Stokes images and PSF of one channel, with a fitted restoring beam.


rule image_channel:
    input:
        vis=rules.split_channel.output.vis,
        selection=rules.inspect_ms.output.selection,
    output:
        image=directory(f"{RESULTS}/channels/{{chan}}.zarr"),
        qa=f"{RESULTS}/qa/image/{{chan}}.json",
    params:
        imaging=imaging_params(),
        clean=clean_params(),
    log:
        "logs/image_channel/{chan}.log",
    benchmark:
        "logs/benchmark/image_channel/{chan}.tsv"
    threads: config["imaging"]["threads"]
    resources:
        mem_mb=image_mem_mb,
        runtime=image_runtime,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/image_channel.py"
