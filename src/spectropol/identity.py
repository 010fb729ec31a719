"""The identity of the run a job belongs to (planning.provenance.run_identity: the workflow's
commit, the configuration's and the sheet's digests, the field), set once per job by
logs.to_file and recorded in the provenance of every product the job writes (io.stores)."""

RUN_IDENTITY: dict[str, str] = {}


def set_run_identity(identity: dict | None) -> None:
    RUN_IDENTITY.clear()
    RUN_IDENTITY.update({str(k): str(v) for k, v in (identity or {}).items()})
