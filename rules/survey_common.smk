# A survey's fields and the input functions of the survey-wide rules (rules/survey.smk): each field
# of the observation sheet is the whole single-field workflow (field.smk) as a Snakemake module with
# its own config (its MSs, overrides and folders under fields/<name>); its rules are named
# field_<name>_<rule>. Adding a row to the sheet adds that field's jobs and reruns only the
# survey-wide ones.
import dataclasses
from pathlib import Path

from snakemake.exceptions import WorkflowError

from spectropol.errors import SpectropolError
from spectropol.planning.code import rule_code_digest
from spectropol.planning.provenance import run_identity
from spectropol.planning.survey import field_config, read_observation_sheet, survey_folder
from spectropol.stages.survey import FieldProducts, SURVEY_FILES

LOGS = config.get("logs_dir") or "logs"
SURVEY = survey_folder(config)
try:
    SHEET = read_observation_sheet(config["observations"], config)
except SpectropolError as err:
    print(f"spectropol: error: {err}", file=sys.stderr)
    raise WorkflowError(str(err))

# What the survey-wide products record (the commit, the survey's config and sheet digests), and the
# fields, which the report's front page names (resources/report/workflow.rst).
config["run"] = run_identity(config, workflow.basedir, {"sheet": SHEET.sheet, "sheet_sha256": SHEET.sheet_sha256}) | {
    "fields": [f.name for f in SHEET.fields]}
TARGETS = []
FIELDS = {}  # field name -> the field module's namespace (its PLAN, RESULTS, rules)
for _field in SHEET.fields:
    _config = field_config(config, _field)
    try:
        validate(_config, "../config/config.schema.yaml")
    except WorkflowError as err:
        # the schema's message, its second line ("ValidationError: 'x' is not of type 'number'"),
        # and where: the last line of the report ("On instance['imaging']['robust']:")
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        what = next((line.split(": ", 1)[1] for line in lines if line.startswith("ValidationError")), lines[0])
        where = next((line[len("On instance"):].rstrip(":") for line in lines if line.startswith("On instance")), "")
        message = f"{SHEET.sheet}: field {_field.name}: {where} {what}".replace("  ", " ")
        print(f"spectropol: error: {message}", file=sys.stderr)
        raise WorkflowError(message)
    _config["run"] = {"field": _field.name, "sheet": SHEET.sheet, "sheet_sha256": SHEET.sheet_sha256}
    _module = f"field_{_field.ident}"
    workflow.module(_module, snakefile="field.smk", config=_config)
    workflow.userule(rules=("*",), from_module=_module, name_modifier=f"{_module}_*")(lambda: None)
    FIELDS[_field.name] = globals()[_module]
    TARGETS += FIELDS[_field.name].TARGETS


def survey_fields():
    """The fields with a catalogue (those with Stokes Q and U), in sheet order, as the survey stages read them."""
    return [FieldProducts(name=name, catalogue=str(f.rules.catalogue.output.ecsv), cube=str(Path(f.CUBE_METADATA).parent),
                          summary=str(f.rules.qa_summary.output.summary))
            for name, f in FIELDS.items() if f.PLAN.polarisation]


def survey_inputs(*kinds):
    return {kind: [getattr(f, kind) if kind != "cube" else f"{f.cube}/zarr.json" for f in survey_fields()]
            for kind in kinds}

