# Catalogue: polarised sources from the moment and peak-PI maps as an RMTable, and the report
# figures (snakemake --report report.html).


def catalogue_products():
    names = {"votable": "catalogue.vot", "fits": "catalogue.fits", "ecsv": "catalogue.ecsv", "csv": "catalogue.csv",
             "skymodel": "skymodel.yaml"}
    return {kind: f"{RESULTS}/catalogue/{name}" for kind, name in names.items()}


rule catalogue:
    input:
        cube=rules.gather_cube.output.cube,
        moments=rules.faraday_moments.output.moments,
        peaks=rules.faraday_peaks.output.peaks,
    output:
        votable=f"{RESULTS}/catalogue/catalogue.vot",
        fits=f"{RESULTS}/catalogue/catalogue.fits",
        ecsv=f"{RESULTS}/catalogue/catalogue.ecsv",
        csv=report(f"{RESULTS}/catalogue/catalogue.csv", caption="../resources/report/catalogue.rst", category="Catalogue"),
        skymodel=f"{RESULTS}/catalogue/skymodel.yaml",
        qa=f"{RESULTS}/qa/catalogue.json",
    params:
        threshold_sigma=config["catalogue"]["threshold_sigma"],
        min_snr=config["catalogue"]["min_snr"],
        box=config["catalogue"]["box"],
    log:
        "logs/catalogue.log",
    benchmark:
        "logs/benchmark/catalogue.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=lambda wc: int(800 + 8 * config["imaging"]["size"] ** 2 * 4 / 1e6 * 4),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/catalogue.py"


rule report_figures:
    input:
        cube=rules.gather_cube.output.cube,
        moments=rules.faraday_moments.output.moments,
        peaks=rules.faraday_peaks.output.peaks,
        fdf_dirty=rules.rm_synthesis.output.fdf,
        fdf_clean=rules.rm_clean.output.fdf if config["faraday"]["clean"] else [],
        catalogue=rules.catalogue.output.ecsv,
    output:
        maps=report(f"{RESULTS}/report/maps.png", caption="../resources/report/maps.rst", category="Maps"),
        moments=report(f"{RESULTS}/report/moments.png", caption="../resources/report/moments.rst", category="Maps"),
        peak_rm=report(f"{RESULTS}/report/peak_rm.png", caption="../resources/report/peak_rm.rst", category="Maps"),
        rmsf=report(f"{RESULTS}/report/rmsf.png", caption="../resources/report/rmsf.rst", category="Faraday depth"),
        spectra=report(f"{RESULTS}/report/fdf_spectra.png", caption="../resources/report/spectra.rst", category="Faraday depth"),
    log:
        "logs/report_figures.log",
    benchmark:
        "logs/benchmark/report_figures.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=lambda wc: int(1000 + 16 * config["imaging"]["size"] ** 2 * 4 / 1e6),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/report_figures.py"
