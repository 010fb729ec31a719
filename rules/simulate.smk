# Simulate: the demo observation, made only when the config names no input MS.


rule simulate_ms:
    input:
        skymodel=resource_path(config["simulate"]["skymodel"]),
        layout=resource_path(config["simulate"]["layout"]),
    output:
        ms=directory(f"{WORK}/ms/demo.ms"),
    params:
        options=as_dict(PLAN.simulate),
    log:
        "logs/simulate_ms.log",
    benchmark:
        "logs/benchmark/simulate_ms.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=PLAN.simulate_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/simulate_ms.py"
