# Catalogue: polarised sources from the moment and peak-PI maps as an RMTable, with a sky model.
from spectropol.stages.catalogue import CATALOGUE_FILES


rule catalogue:
    input:
        cube=CUBE_METADATA,
        moments=rules.faraday_depth.output.moments,
        peaks=rules.faraday_depth.output.peaks,
        **primary_beam_inputs(),
    output:
        **{kind: f"{RESULTS}/catalogue/{name}" for kind, name in CATALOGUE_FILES.items() if kind != "csv"},
        csv=report(f"{RESULTS}/catalogue/{CATALOGUE_FILES['csv']}", caption="../resources/report/catalogue.rst",
                   category="Catalogue", subcategory=FIELD),
        qa=f"{RESULTS}/qa/catalogue.json",
    params:
        code=code("catalogue.py"),
        options=as_dict(PLAN.catalogue),
    log:
        f"{LOGS}/catalogue.log",
    benchmark:
        f"{LOGS}/benchmark/catalogue.tsv"
    threads: 1
    # before the FITS exports that become ready with it: the rerun's longest chain goes on through
    # it (faraday_depth, catalogue, report_sources)
    priority: 20
    resources:
        runtime=PLAN.catalogue_runtime(),
        mem_mb=lambda wc: PLAN.catalogue_mem_mb(),  # a function: one channel has no Faraday grid
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/catalogue.py"
