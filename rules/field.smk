# One observation (a field): every stage, from the MSs (or FITS cubes) in config `input` to the
# catalogue and the report. Included as it is for a single observation; a survey uses it once per
# field as a module (rules/survey.smk), with the field's config, so that each field's products are
# exactly what a single-field run of that config makes.


include: "common.smk"
include: "simulate.smk"
include: "inspect.smk"
include: "split.smk"
include: "image.smk"
include: "cube.smk"
include: "faraday.smk"
include: "moments.smk"
include: "primary_beam.smk"
include: "catalogue.smk"
include: "report.smk"
include: "qa.smk"


# What `rule all` asks of this field.
TARGETS = [
    CUBE_METADATA,
    rules.export_cube_fits.output if PLAN.cube_fits else [],
    rules.qa_summary.output,
    rules.report_provenance.output,
    polarisation_products(),
]
