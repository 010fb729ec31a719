# Image: weighted Stokes images, PSF and CLEAN of each channel of a block, with a fitted restoring beam.


rule image_channel:
    input:
        vis=rules.split_channel.output.vis,
        selection=rules.inspect_ms.output.selection,
    output:
        # update(): Snakemake keeps the block's stores, and the job images again only the channels
        # whose visibilities, geometry or settings changed (stages.image.image_block).
        image=update(directory(f"{RESULTS}/channels/{{block}}")),
        qa=update(directory(f"{RESULTS}/qa/image/{{block}}")),
    params:
        code=code("image_channel.py"),
        channels=block_channels,
        settings=block_settings,
        width=PLAN.width,
        # the image kinds each channel's store keeps: the cube's, and imaging.keep_images
        images=list(PLAN.channel_images),
    log:
        f"{LOGS}/image_channel/{{block}}.log",
    benchmark:
        f"{LOGS}/benchmark/image_channel/{{block}}.tsv"
    threads: PLAN.imaging_threads
    # on a cluster, blocks' split and image jobs travel together, several blocks per submission
    # (profiles/slurm: group-components), so that thousands of channels make few sbatch calls
    group:
        "channel_block"
    resources:
        mem_mb=lambda wc, input: PLAN.image_mem_mb(wc.block, input.size_mb),
        runtime=lambda wc, input: PLAN.image_runtime(wc.block, input.size_mb),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/image_channel.py"
