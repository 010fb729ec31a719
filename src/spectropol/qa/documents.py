"""QA documents: the small JSON file of statistics every job writes beside its product, checked
against spectropol/schemas/qa.schema.json (installed with the package)."""

from __future__ import annotations

import dataclasses
import json
import os
from importlib import resources
from pathlib import Path

from ..io.stores import write_json

QA_SCHEMA_VERSION = "1.0"


def schema(name: str) -> dict:
    """A JSON schema shipped with the package: 'qa' or 'qa-message'."""
    return json.loads(resources.files("spectropol").joinpath("schemas", f"{name}.schema.json").read_text())


def qa_document(kind: str, body: dict, rule: str) -> dict:
    """{schema_version, kind, rule, ...statistics}; ``rule`` names what ran the stage (a workflow
    rule, or a command of the command line)."""
    return {"schema_version": QA_SCHEMA_VERSION, "kind": kind, "rule": rule, **body}


def write_qa(path: str | os.PathLike, kind: str, body, rule: str) -> None:
    """Write a QA document atomically; ``body`` is a dict or a stage's result dataclass (whose
    ``QA_NAMES``, if it has them, rename fields whose QA name is not a Python name)."""
    if dataclasses.is_dataclass(body):
        names = getattr(body, "QA_NAMES", {})
        body = {names.get(k, k): v for k, v in dataclasses.asdict(body).items()}
    write_json(path, qa_document(kind, body, rule))


def read_qa_documents(paths, *, recursive: bool = True) -> list[tuple[str, dict]]:
    """(path, document) of every QA document among ``paths``: JSON files with a QA schema version
    and a kind, and such files inside folders (at any depth, or directly inside when not
    ``recursive``), folders in name order. Other JSON (a store's zarr.json, a summary) is passed over."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            candidates = sorted(path.rglob("*.json") if recursive else path.glob("*.json"))
        else:
            candidates = [path] if path.suffix == ".json" else []
        for candidate in candidates:
            try:
                document = json.loads(candidate.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(document, dict) and "schema_version" in document and "kind" in document:
                found.append((str(candidate), document))
    return found
