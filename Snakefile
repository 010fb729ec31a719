# spectropol: Measurement Set -> per-channel Stokes images -> Zarr cube -> Faraday products -> catalogue.
# Stages, one rule file each, in data-flow order; rules call thin scripts, scripts call
# src/spectropol/stages/<stage>.py. What runs is planned by spectropol.planning (rules/common.smk).
# One observation is rules/field.smk; a survey (config `observations`: a sheet of fields) is that
# same workflow once per field, as a Snakemake module, and the survey-wide merge (rules/survey.smk).

import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")

# The workflow and its scripts import the library from this checkout, in a venv or a conda
# environment alike.
_src = os.path.join(workflow.basedir, "src")
if _src not in sys.path:
    sys.path.insert(0, _src)
if _src not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_src, os.environ.get("PYTHONPATH")) if p)


# Declared, so that Snakemake passes it on to jobs on other hosts (SLURM) as well.
envvars:
    "PYTHONPATH",


configfile: workflow.source_path("config/config.yaml")


validate(config, "config/config.schema.yaml")


report: "resources/report/workflow.rst"


if config.get("observations"):

    include: "rules/survey.smk"

else:

    include: "rules/field.smk"


rule all:
    input:
        TARGETS,
    default_target: True
