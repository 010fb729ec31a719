"""Surveys: an observation sheet of fields, each a run of the whole workflow in its own folders.

The sheet is a tab-separated file with a header (the Snakemake way, as snakemake-workflows use
samples.tsv): one row per field, ``name`` and ``ms`` (paths or glob patterns, comma-separated,
relative to the working directory as input.ms is), then optional per-field overrides, a column
per setting named by its place in the config (``input.column``, ``imaging.robust``,
``clean.niter``...; ``column``, ``spw`` and ``field`` are short for ``input.*``). An empty cell
keeps the survey's setting; a cell is read as a YAML scalar or flow list (``0``, ``null``,
``[0, 2]``), and each field's config is validated as the workflow's own is.

Each field becomes a copy of the config whose work, results and logs folders are
``<folder>/fields/<name>``: the field's products are what a single-field run of that config
makes, and its jobs are its own, so that adding a field adds only its jobs (and the merge).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import re
from pathlib import Path

import yaml

from .observation import PlanError, expand_inputs

FIELD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
SHORT_NAMES = {"column": "input.column", "spw": "input.spw", "field": "input.field"}
# Settings a row may not change: where things go, what is read, and survey-wide machinery.
FIXED = ("work_dir", "results_dir", "logs_dir", "observations", "input.ms", "input.cubes", "simulate", "dask",
         "report", "qa")


@dataclasses.dataclass(frozen=True)
class FieldRow:
    """One field of the sheet: its name, its MSs (globs expanded) and its overrides (dotted keys)."""

    name: str
    ms: tuple[str, ...]
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def ident(self) -> str:
        """The name as a Python identifier, for the field's rule names (field_<ident>_<rule>)."""
        return re.sub(r"\W", "_", self.name)


@dataclasses.dataclass(frozen=True)
class Survey:
    """The fields of an observation sheet, in sheet order, and the sheet's content digest."""

    sheet: str
    fields: tuple[FieldRow, ...]
    sheet_sha256: str

    def field(self, name: str) -> FieldRow:
        return next(f for f in self.fields if f.name == name)


def _cell(text: str, where: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise PlanError(f"{where}: {text!r} is not a value (a number, text, null or [a, b])") from None


def _known_key(config: dict, key: str) -> bool:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def read_observation_sheet(path: str | Path, config: dict) -> Survey:
    """The sheet at ``path``, checked against ``config`` (the survey's settings): one-line errors
    name the sheet, the row and what is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError(f"{path}: observation sheet not found (observations in the config)") from None
    except OSError as err:
        raise PlanError(f"{path}: observation sheet cannot be read ({err.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanError(f"{path}: observation sheet is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise PlanError(f"{path}: observation sheet is empty (a header and a row per field are needed)")
    reader = csv.DictReader(lines, delimiter="\t")
    header = [h.strip() for h in (reader.fieldnames or [])]
    for required in ("name", "ms"):
        if required not in header:
            raise PlanError(f"{path}: observation sheet has no '{required}' column (tab-separated, header first; "
                            f"it has {', '.join(header) or 'none'})")
    settings = {}
    for column in header:
        if column in ("name", "ms"):
            continue
        key = SHORT_NAMES.get(column, column)
        if any(key == fixed or key.startswith(fixed + ".") for fixed in FIXED):
            raise PlanError(f"{path}: column '{column}': {key} is the same for every field and cannot be set per field")
        if not _known_key(config, key):
            raise PlanError(f"{path}: column '{column}' is not a setting of the config (e.g. imaging.robust)")
        settings[column] = key
    fields, seen = [], set()
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise PlanError(f"{path}: line {number} has more cells than the header")
        row = {k.strip(): (v or "").strip() for k, v in row.items()}
        name = row["name"]
        where = f"{path}: line {number}"
        if not FIELD_NAME.match(name):
            raise PlanError(f"{where}: field name {name!r} must be letters, digits, _ . + - (64 at most), "
                            "starting with a letter or digit")
        if name in seen:
            raise PlanError(f"{where}: field {name!r} is given twice")
        seen.add(name)
        fields.append(FieldRow(name=name, ms=_field_ms(row["ms"], f"{where} (field {name})"),
                               overrides=tuple((key, _cell(row[column], f"{where}, column {column}"))
                                               for column, key in settings.items() if row.get(column, "") != "")))
    if not fields:
        raise PlanError(f"{path}: observation sheet has a header but no fields")
    idents = [f.ident for f in fields]
    clashing = sorted({i for i in idents if idents.count(i) > 1})
    if clashing:
        names = [f.name for f in fields if f.ident == clashing[0]]
        raise PlanError(f"{path}: field names {names} differ only in punctuation; their rule names would be the same")
    return Survey(sheet=str(path), fields=tuple(fields), sheet_sha256=hashlib.sha256(raw).hexdigest())


def _field_ms(cell: str, where: str) -> tuple[str, ...]:
    items = [item.strip() for item in cell.split(",") if item.strip()]
    if not items:
        raise PlanError(f"{where}: no Measurement Set in the ms column")
    return tuple(expand_inputs(items, where))


def field_folders(config: dict, name: str) -> dict[str, str]:
    """The work, results and logs folders of field ``name`` of a survey run with ``config``."""
    return {key: str(Path(config.get(key) or default) / "fields" / name)
            for key, default in (("work_dir", "work"), ("results_dir", "results"), ("logs_dir", "logs"))}


def field_config(config: dict, field: FieldRow) -> dict:
    """The config of one field: the survey's, its folders moved under fields/<name>, its MSs, and
    the row's overrides."""
    result = copy.deepcopy({key: value for key, value in config.items() if key != "run"})
    result.update(field_folders(config, field.name))
    result["observations"] = None
    result["input"]["ms"] = list(field.ms)
    result["input"]["cubes"] = None
    for key, value in field.overrides:
        *parents, last = key.split(".")
        node = result
        for part in parents:
            node = node[part]
        node[last] = value
    return result


def survey_folder(config: dict) -> str:
    """Where the survey-wide products go: the survey catalogue and QA."""
    return str(Path(config.get("results_dir") or "results") / "survey")
