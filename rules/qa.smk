# QA: every job's QA documents aggregated into one summary with outliers flagged, and a plot.
# The same aggregation follows a run live on Kafka (`spectropol qa aggregate`, docs/qa-messages.md).


rule qa_summary:
    input:
        **qa_documents(),
    output:
        summary=f"{RESULTS}/qa/summary.json",
        plot=report(f"{RESULTS}/report/channel_qa.png", caption="../resources/report/channel_qa.rst", category="Quality", subcategory=FIELD),
    params:
        code=code("qa_summary.py"),
        options=as_dict(PLAN.qa),
    log:
        f"{LOGS}/qa_summary.log",
    benchmark:
        f"{LOGS}/benchmark/qa_summary.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=PLAN.qa_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/qa_summary.py"
