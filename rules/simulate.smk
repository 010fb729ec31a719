# The demo observation, made only when the config names no input MS.


rule simulate_ms:
    input:
        skymodel=resource_path(config["simulate"]["skymodel"]),
        layout=resource_path(config["simulate"]["layout"]),
    output:
        ms=directory(f"{WORK}/ms/demo.ms"),
    params:
        observation={k: v for k, v in config["simulate"].items() if k not in ("skymodel", "layout")},
    log:
        "logs/simulate_ms.log",
    benchmark:
        "logs/benchmark/simulate_ms.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=lambda wc: int(500 + config["simulate"]["nchan"] * config["simulate"]["ntimes"] * 0.2),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/simulate_ms.py"
