# Survey: the fields' catalogues merged into one RMTable, and the quality by field (stages/survey.py).
# The fields and these rules' inputs: survey_common.smk.

include: "survey_common.smk"

rule survey_catalogue:
    """The fields' catalogues as one RMTable, each source once (stages/survey.py)."""
    input:
        **survey_inputs("catalogue", "cube"),
    output:
        **{kind: f"{SURVEY}/{name}" for kind, name in SURVEY_FILES.items()},
    params:
        code=rule_code_digest(workflow.basedir, "survey_catalogue.py"),
        fields=[dataclasses.asdict(f) for f in survey_fields()],
        # where datarefs are relative to: the folder above survey/
        results_dir=lambda wildcards, output: str(Path(output.ecsv).parent.parent),
    log:
        f"{LOGS}/survey_catalogue.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/survey_catalogue.py"


rule survey_qa:
    """Noise, beam, sensitivity, sources and failures by field: where the survey needs attention."""
    input:
        **survey_inputs("catalogue", "cube", "summary"),
        merged=rules.survey_catalogue.output.ecsv,
    output:
        qa=f"{SURVEY}/fields.json",
        plot=report(f"{SURVEY}/fields.png", caption="../resources/report/survey_qa.rst", category="Survey"),
    params:
        code=rule_code_digest(workflow.basedir, "survey_qa.py"),
        fields=[dataclasses.asdict(f) for f in survey_fields()],
        min_snr=config["catalogue"]["min_snr"],
    log:
        f"{LOGS}/survey_qa.log",
    threads: 1
    resources:
        runtime=10,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/survey_qa.py"


TARGETS += [rules.survey_catalogue.output, rules.survey_qa.output]
