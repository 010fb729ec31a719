# Report: figures of the maps and Faraday spectra for `snakemake --report report.html`. Those that
# need no catalogue are made while the catalogue is (the rerun's last stretch is catalogue, then
# the figures of its sources).


rule report_field:
    input:
        cube=CUBE_METADATA,
        moments=rules.faraday_depth.output.moments,
        peaks=rules.faraday_depth.output.peaks,
    output:
        moments=report(f"{RESULTS}/report/moments.png", caption="../resources/report/moments.rst", category="Maps"),
        peak_rm=report(f"{RESULTS}/report/peak_rm.png", caption="../resources/report/peak_rm.rst", category="Maps"),
        rmsf=report(f"{RESULTS}/report/rmsf.png", caption="../resources/report/rmsf.rst", category="Faraday depth"),
    log:
        "logs/report_field.log",
    benchmark:
        "logs/benchmark/report_field.tsv"
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
    output:
        maps=report(f"{RESULTS}/report/maps.png", caption="../resources/report/maps.rst", category="Maps"),
        spectra=report(f"{RESULTS}/report/fdf_spectra.png", caption="../resources/report/spectra.rst",
                       category="Faraday depth"),
    params:
        brightest=config["report"]["brightest"],
    log:
        "logs/report_sources.log",
    benchmark:
        "logs/benchmark/report_sources.tsv"
    threads: 1
    priority: 10
    resources:
        runtime=30,
        mem_mb=PLAN.report_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/report_sources.py"
