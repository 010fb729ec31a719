# Inspect: fingerprint each MS's channels (a job per MS, so that reading the workflow never reads
# visibilities), then check every input once and record the selections and image geometry.


checkpoint fingerprint_ms:
    input:
        # The MS's file times are ignored; its storage signature (sizes and modification times of
        # its files, a stat each) decides when this job looks again, and the record it writes,
        # hashes of each channel's content, decides which channels rerun.
        ms=ancient(ms_of),
    output:
        # Also the job's own cache: kept, so that only changed columns are read again.
        record=update(f"{WORK}/ms/{{ms_id}}/fingerprints.json"),
    params:
        code=code("fingerprint_ms.py"),
        storage=storage_of,
        spws=lambda wc: input_spws(PLAN.ms_index(wc.ms_id)),
        selection=as_dict(PLAN.selection),
    log:
        f"{LOGS}/fingerprint_ms/{{ms_id}}.log",
    benchmark:
        f"{LOGS}/benchmark/fingerprint_ms/{{ms_id}}.tsv"
    threads: 1
    resources:
        runtime=lambda wc: PLAN.fingerprint_runtime(PLAN.ms_index(wc.ms_id)),
        mem_mb=1500,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/fingerprint_ms.py"


rule inspect_ms:
    input:
        ms=ms_inputs(range(len(PLAN.inputs))),
        fingerprints=ancient(lambda wc: fingerprint_inputs(range(len(PLAN.inputs)))),
    output:
        selection=f"{WORK}/ms/selection.json",
    params:
        code=code("inspect_ms.py"),
        # The MSs are named by the records (or are the inputs): a re-delivered copy at another
        # path must not re-inspect everything.
        spws=[input_spws(k) for k in range(len(PLAN.inputs))],
        selection=as_dict(PLAN.selection),
        geometry=as_dict(PLAN.geometry),
        layouts=layouts,
    log:
        f"{LOGS}/inspect_ms.log",
    benchmark:
        f"{LOGS}/benchmark/inspect_ms.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/inspect_ms.py"
