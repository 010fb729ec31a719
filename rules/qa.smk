# QA: every job's QA documents aggregated into one summary with outliers flagged, and a plot.
# The same aggregation follows a run live on Kafka (`spectropol qa aggregate`, docs/qa-messages.md).


def qa_inputs():
    documents = {
        "split": expand(f"{RESULTS}/qa/split/{{block}}", block=BLOCKS),
        "image": expand(f"{RESULTS}/qa/image/{{block}}", block=BLOCKS),
        "cube": rules.gather_cube.output.qa,
    }
    if POLARISATION:
        documents |= {"moments": rules.faraday_moments.output.qa, "rm_synthesis": rules.rm_synthesis.output.qa,
                      "faraday_peaks": rules.faraday_peaks.output.qa, "catalogue": rules.catalogue.output.qa}
        if config["faraday"]["clean"]:
            documents["rm_clean"] = rules.rm_clean.output.qa
    return documents


rule qa_summary:
    input:
        **qa_inputs(),
    output:
        summary=f"{RESULTS}/qa/summary.json",
        plot=report(f"{RESULTS}/report/channel_qa.png", caption="../resources/report/channel_qa.rst", category="Quality"),
    params:
        k=3.0,
    log:
        "logs/qa_summary.log",
    benchmark:
        "logs/benchmark/qa_summary.tsv"
    threads: 1
    resources:
        runtime=10,
        mem_mb=lambda wc: int(500 + 0.01 * NCHAN),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/qa_summary.py"
