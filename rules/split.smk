# Split: check the MS once, then one job per channel writes its Stokes visibilities.


rule inspect_ms:
    input:
        ms=input_ms(),
    output:
        selection=f"{WORK}/ms/selection.json",
    params:
        column=config["input"]["column"],
        spw=config["input"]["spw"],
        field=config["input"]["field"],
        size=config["imaging"]["size"],
        cell_arcsec=config["imaging"]["cell_arcsec"],
        pixels_per_beam=config["imaging"]["pixels_per_beam"],
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
        ms=input_ms(),
        selection=rules.inspect_ms.output.selection,
        ionosphere_rm=config["input"]["ionosphere_rm"] or [],
    output:
        vis=directory(f"{WORK}/vis/{{chan}}.zarr"),
        qa=f"{RESULTS}/qa/split/{{chan}}.json",
    log:
        "logs/split_channel/{chan}.log",
    benchmark:
        "logs/benchmark/split_channel/{chan}.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/split_channel.py"
