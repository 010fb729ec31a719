# spectropol: Measurement Set -> per-channel Stokes images -> Zarr cube -> Faraday moments.
# Stages, one rule file each, in data-flow order; rules call thin scripts, scripts call the library.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: workflow.source_path("config/config.yaml")


validate(config, "config/config.schema.yaml")


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/split.smk"
include: "rules/image.smk"
include: "rules/cube.smk"
include: "rules/moments.smk"
include: "rules/faraday.smk"
include: "rules/catalogue.smk"
include: "rules/qa.smk"


report: "resources/report/workflow.rst"


rule all:
    input:
        cube_products(),
        moment_products() if POLARISATION else [],
        faraday_products() if POLARISATION else [],
        list(catalogue_products().values()) + list(rules.report_figures.output) if POLARISATION else [],
        rules.qa_summary.output,
    default_target: True
