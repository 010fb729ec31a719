# Inspect: fingerprint the MS's channels (a job of its own, so that reading the workflow never
# reads visibilities), then check the MS once and record the selection and image geometry.


checkpoint fingerprint_ms:
    input:
        # The MS's file times are ignored; its storage signature (sizes and modification times of
        # its files, a stat each) decides when this job looks again, and the record it writes,
        # hashes of each channel's content, decides which channels rerun.
        ms=ancient(PLAN.ms) if PLAN.fingerprint else [],
    output:
        # Also the job's own cache: kept, so that only changed columns are read again.
        record=update(fingerprint_record()),
    params:
        storage=storage_signature(PLAN.ms) if PLAN.fingerprint else None,
        selection=as_dict(PLAN.selection),
    log:
        "logs/fingerprint_ms.log",
    benchmark:
        "logs/benchmark/fingerprint_ms.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=1500,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/fingerprint_ms.py"


rule inspect_ms:
    input:
        ms=ms_input,
        fingerprints=ancient(fingerprint_input),
    output:
        selection=f"{WORK}/ms/selection.json",
    params:
        selection=as_dict(PLAN.selection),
        geometry=as_dict(PLAN.geometry),
        layout=layout_fingerprint,
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
