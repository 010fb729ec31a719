# Split: check the MS once, then one job per block of channels writes their Stokes visibilities.


rule inspect_ms:
    input:
        ms=ms_input(),
    output:
        selection=f"{WORK}/ms/selection.json",
    params:
        column=config["input"]["column"],
        spw=config["input"]["spw"],
        field=config["input"]["field"],
        size=config["imaging"]["size"],
        cell_arcsec=config["imaging"]["cell_arcsec"],
        pixels_per_beam=config["imaging"]["pixels_per_beam"],
        layout=FINGERPRINTS.layout if FINGERPRINTS else None,
    log:
        "logs/inspect_ms.log",
    benchmark:
        "logs/benchmark/inspect_ms.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/inspect_ms.py"


rule split_channel:
    input:
        ms=ms_input(),
        selection=rules.inspect_ms.output.selection,
        ionosphere_rm=config["input"]["ionosphere_rm"] or [],
    output:
        vis=directory(f"{WORK}/vis/{{block}}"),
        qa=directory(f"{RESULTS}/qa/split/{{block}}"),
    params:
        channels=block_channels,
        fingerprints=block_fingerprints,
        width=CHANNEL_WIDTH,
    log:
        "logs/split_channel/{block}.log",
    benchmark:
        "logs/benchmark/split_channel/{block}.tsv"
    threads: 1
    resources:
        runtime=split_runtime,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/split_channel.py"
