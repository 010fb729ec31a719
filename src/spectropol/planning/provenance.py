"""The identity of a run, which every product records: who made it, from what settings and sheet.

Computed once when the workflow is read (rules/common.smk) and handed to the jobs in the config
they see, not as a param: a new commit of the workflow then reruns only what its code changes
(planning.code), while every product still says which commit, configuration and sheet made it.
"""

from __future__ import annotations

from .. import __version__
from ..io.stores import config_sha256, workflow_commit


def run_identity(config: dict, workflow_dir, survey: dict | None = None) -> dict:
    """What every product of a run records beside its own inputs: the software version, the
    workflow's commit, the configuration's digest, and in a survey the sheet's digest and the field."""
    identity = {"software_version": __version__, "workflow_commit": workflow_commit(str(workflow_dir)),
                "config_sha256": config_sha256(config)}
    return identity | {k: v for k, v in (survey or {}).items() if k in ("sheet", "sheet_sha256", "field")}
