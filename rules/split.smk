# Split: one job per block of channels writes their Stokes visibilities.


rule split_channel:
    input:
        ms=ms_input,
        fingerprints=ancient(fingerprint_input),
        selection=rules.inspect_ms.output.selection,
        ionosphere_rm=config["input"]["ionosphere_rm"] or [],
    output:
        vis=directory(f"{WORK}/vis/{{block}}"),
        qa=directory(f"{RESULTS}/qa/split/{{block}}"),
    params:
        channels=block_channels,
        fingerprints=block_fingerprints,
        width=PLAN.width,
    log:
        "logs/split_channel/{block}.log",
    benchmark:
        "logs/benchmark/split_channel/{block}.tsv"
    threads: 1
    resources:
        runtime=lambda wc: PLAN.split_runtime(wc.block),
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/split_channel.py"
