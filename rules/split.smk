# Split: one job per block of channels (of one spectral window of one MS) writes their Stokes visibilities.


rule split_channel:
    input:
        ms=block_ms_inputs,
        fingerprints=ancient(block_fingerprint_inputs),
        selection=rules.inspect_ms.output.selection,
        ionosphere_rm=config["input"]["ionosphere_rm"] or [],
    output:
        vis=directory(f"{WORK}/vis/{{block}}"),
        qa=directory(f"{RESULTS}/qa/split/{{block}}"),
    params:
        code=code("split_channel.py"),
        channels=block_channels,
        source=block_source,
        fingerprints=block_fingerprints,
        options=as_dict(PLAN.split),
        width=PLAN.width,
    log:
        f"{LOGS}/split_channel/{{block}}.log",
    benchmark:
        f"{LOGS}/benchmark/split_channel/{{block}}.tsv"
    threads: 1
    # on a cluster, blocks' split and image jobs travel together, several blocks per submission
    # (profiles/slurm: group-components), so that thousands of channels make few sbatch calls
    group:
        "channel_block"
    resources:
        runtime=lambda wc: PLAN.split_runtime(wc.block),
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/split_channel.py"
