# Simulate: the demo observation, made only when the config names no input MS.


rule simulate_ms:
    input:
        skymodel=resource_path(config["simulate"]["skymodel"]),
        layout=resource_path(config["simulate"]["layout"]),
    output:
        ms=directory(f"{WORK}/ms/demo.ms"),
    params:
        code=code("simulate_ms.py"),
        options=as_dict(PLAN.simulate),
    log:
        f"{LOGS}/simulate_ms.log",
    benchmark:
        f"{LOGS}/benchmark/simulate_ms.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=PLAN.simulate_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/simulate_ms.py"
