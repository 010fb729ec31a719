# Report: figures of the maps and Faraday spectra for `snakemake --report report.html`. Those that
# need no catalogue are made while the catalogue is (the rerun's last stretch is catalogue, then
# the figures of its sources).


rule report_field:
    input:
        cube=CUBE_METADATA,
        moments=rules.faraday_depth.output.moments,
        peaks=rules.faraday_depth.output.peaks,
    output:
        moments=report(f"{RESULTS}/report/moments.png", caption="../resources/report/moments.rst", category="Maps", subcategory=FIELD),
        peak_rm=report(f"{RESULTS}/report/peak_rm.png", caption="../resources/report/peak_rm.rst", category="Maps", subcategory=FIELD),
        rmsf=report(f"{RESULTS}/report/rmsf.png", caption="../resources/report/rmsf.rst", category="Faraday depth", subcategory=FIELD),
    params:
        code=code("report_field.py"),
    log:
        f"{LOGS}/report_field.log",
    benchmark:
        f"{LOGS}/benchmark/report_field.tsv"
    threads: 1
    priority: 10
    resources:
        runtime=30,
        mem_mb=PLAN.report_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/report_field.py"


rule report_sources:
    input:
        cube=CUBE_METADATA,
        moments=rules.faraday_depth.output.moments,
        peaks=rules.faraday_depth.output.peaks,
        candidates=rules.faraday_depth.output.candidates,
        catalogue=rules.catalogue.output.ecsv,
        spectra=rules.catalogue.output.spectra,
    output:
        maps=report(f"{RESULTS}/report/maps.png", caption="../resources/report/maps.rst", category="Maps", subcategory=FIELD),
        spectra=report(f"{RESULTS}/report/fdf_spectra.png", caption="../resources/report/spectra.rst",
                       category="Faraday depth", subcategory=FIELD),
    params:
        code=code("report_sources.py"),
        brightest=config["report"]["brightest"],
    log:
        f"{LOGS}/report_sources.log",
    benchmark:
        f"{LOGS}/benchmark/report_sources.tsv"
    threads: 1
    # The end of the rerun's longest chain (faraday_depth, catalogue, this): first of what is ready.
    priority: 20
    resources:
        runtime=30,
        mem_mb=PLAN.report_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/report_sources.py"


rule report_catalogue:
    """The catalogue as a sortable table for the report (the RMTable files stay in catalogue/)."""
    input:
        catalogue=rules.catalogue.output.ecsv,
    output:
        table=report(f"{RESULTS}/report/catalogue.html", caption="../resources/report/catalogue_table.rst",
                     category="Catalogue", subcategory=FIELD),
    params:
        code=code("report_catalogue.py"),
    log:
        f"{LOGS}/report_catalogue.log",
    threads: 1
    priority: 10
    resources:
        runtime=10,
        mem_mb=500,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/report_catalogue.py"


rule report_provenance:
    """Software versions, the workflow's commit, the machine and the configuration: the report's
    Provenance page. It reruns when the configuration or an installed version changes."""
    output:
        page=report(f"{RESULTS}/report/provenance.html", caption="../resources/report/provenance.rst",
                    category="Provenance", subcategory=FIELD),
        # the versions and commit as a table the report's front page includes (workflow.rst)
        summary=f"{RESULTS}/report/provenance.rst",
    params:
        code=code("report_provenance.py"),
        config=CONFIG,
        versions=SOFTWARE_VERSIONS,
        workflow_dir=workflow.basedir,
    log:
        f"{LOGS}/report_provenance.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=500,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/report_provenance.py"
