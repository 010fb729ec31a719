"""Channel identity by content: a fingerprint of each channel of the selected MS data, so that a
rerun reprocesses exactly the channels whose visibilities, flags or weights changed.

A channel's fingerprint hashes its slice of the data column, FLAG and WEIGHT_SPECTRUM, together
with everything that is shared by all channels (UVW, TIME, antennas, WEIGHT, FLAG_ROW) and the
description of the selection (frequencies, correlations, phase centre). Hashes are kept in a cache
file with the size and modification time of the storage files behind each column; a column whose
files did not change is not read again, so a rerun after editing FLAG reads FLAG only, and a rerun
with nothing changed reads nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import fail
from .ms import open_table, select_data
from .stores import write_json

log = logging.getLogger(__name__)

CACHE_VERSION = 1
ROW_COLUMNS = ("UVW", "TIME", "ANTENNA1", "ANTENNA2", "WEIGHT", "FLAG_ROW")
# Bytes of one column read at a time; channels are read in groups so the cost per channel is one
# slice, not one table access.
READ_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Fingerprints:
    layout: str  # selection description and the row columns: a change re-plans every channel
    channels: tuple[str, ...]  # one hex digest per channel of the spectral window


def _digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()


def _storage_stats(ms: str, files: list[str]) -> dict[str, list[int]]:
    stats = {}
    for name in files:
        st = os.stat(os.path.join(ms, name))
        stats[name] = [st.st_size, st.st_mtime_ns]
    return stats


def _column_files(main, ms: str) -> dict[str, list[str]]:
    """Storage files of each column of the main table: its data manager's table.fN* files."""
    names = sorted(os.listdir(ms))
    files = {}
    for manager in main.getdminfo().values():
        prefix = f"table.f{manager['SEQNR']}"
        own = [n for n in names if n == prefix or n.startswith(prefix + "_")]
        for column in manager["COLUMNS"]:
            files[column] = own
    return files


def _subtable_stats(ms: str) -> dict[str, list[int]]:
    """Size and mtime of every file outside the main table's column storage (subtables, table.dat)."""
    stats = {}
    for root, _, files in os.walk(ms):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, ms)
            if os.sep in rel or not rel.startswith("table.f"):
                st = os.stat(path)
                stats[rel] = [st.st_size, st.st_mtime_ns]
    return stats


def _load_cache(path: Path, key: dict) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(cache, dict) or cache.get("version") != CACHE_VERSION or cache.get("key") != key:
        return {}
    return cache


def _channel_column_hashes(sub, column: str, nchan: int, ncorr: int) -> list[str]:
    """Digest of each channel's slice of a (row, chan, corr) column, reading groups of channels."""
    group = max(1, min(nchan, READ_BYTES // max(1, sub.nrows() * ncorr * 8)))
    digests = []
    for first in range(0, nchan, group):
        last = min(nchan, first + group) - 1
        block = sub.getcolslice(column, [first, 0], [last, ncorr - 1])
        for k in range(block.shape[1]):
            digests.append(_digest(np.ascontiguousarray(block[:, k, :]).tobytes()))
    return digests


def ms_fingerprints(ms: str, *, column: str, spw: int | None, field: int | None,
                    cache_path: str | os.PathLike) -> Fingerprints:
    """Fingerprints of every channel of the selected data of ``ms``, recomputing only the columns
    whose storage files changed since ``cache_path`` was written (and writing it anew)."""
    from casacore.tables import taql

    ms = os.path.abspath(ms)
    cache_path = Path(cache_path)
    key = {"ms": os.path.realpath(ms), "column": column, "spw": spw, "field": field}
    cache = _load_cache(cache_path, key)
    subtables = _subtable_stats(ms)
    main = open_table(ms)
    try:
        files = _column_files(main, ms)
        spectral = [column, "FLAG"] + (["WEIGHT_SPECTRUM"] if "WEIGHT_SPECTRUM" in main.colnames() else [])
        rows = [c for c in ROW_COLUMNS if c in main.colnames()]
        column_stats = {c: _storage_stats(ms, files.get(c, [])) for c in spectral + rows}
        old = cache.get("columns", {})
        stale = [c for c in spectral if old.get(c, {}).get("stats") != column_stats[c]]
        rows_stale = (cache.get("subtables") != subtables
                      or any(old.get(c, {}).get("stats") != column_stats[c] for c in rows))
        if not stale and not rows_stale and "layout" in cache:
            return Fingerprints(cache["layout"], tuple(cache["channels"]))

        selection = select_data(ms, column=column, spw=spw, field=field)
        description = selection.to_dict()
        description.pop("ms")
        nchan, ncorr = len(selection.freqs), len(selection.corr_names)
        sub = taql(f"SELECT FROM $main WHERE {selection.taql}")
        try:
            columns = {c: old[c] for c in spectral if c not in stale}
            for c in spectral:
                if c == "WEIGHT_SPECTRUM" and not sub.iscelldefined(c, 0):
                    columns[c] = {"channels": None}  # declared but empty: WEIGHT is used
                elif c in stale or c not in columns:
                    log.info("%s: fingerprinting %s of %d channels", ms, c, nchan)
                    columns[c] = {"channels": _channel_column_hashes(sub, c, nchan, ncorr)}
                columns[c]["stats"] = column_stats[c]
            row_digest = _digest(json.dumps(description, sort_keys=True),
                                 *(np.ascontiguousarray(sub.getcol(c)).tobytes() for c in rows))
        except RuntimeError as err:
            raise fail(ms, f"cannot be read; it is truncated or damaged ({str(err).splitlines()[0]})") from None
        finally:
            sub.close()
    finally:
        main.close()
    for c in rows:
        columns[c] = {"stats": column_stats[c]}
    used = [c for c in spectral if columns[c]["channels"] is not None]
    channels = tuple(_digest(row_digest, *(columns[c]["channels"][k] for c in used)) for k in range(nchan))
    try:
        write_json(cache_path, {"version": CACHE_VERSION, "key": key, "subtables": subtables, "columns": columns,
                                "layout": row_digest, "channels": list(channels)})
    except OSError as err:
        log.warning("%s: cannot write the fingerprint cache (%s); the next run reads the MS again", cache_path, err)
    return Fingerprints(row_digest, channels)


def storage_signature(ms: str) -> str:
    """A digest of the name, size and modification time of every file of ``ms``: no table is
    opened and nothing is read, so the workflow can afford it whenever it is read. When it
    changes, the fingerprint job runs and finds out (cheaply, from its cache) what really did."""
    entries = []
    for root, _, files in os.walk(ms):
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            entries.append(f"{os.path.relpath(os.path.join(root, name), ms)}:{st.st_size}:{st.st_mtime_ns}")
    return _digest(os.path.realpath(ms), *sorted(entries))


def read_fingerprints(record: str | os.PathLike) -> tuple[str, Fingerprints]:
    """The MS a fingerprint record describes and its fingerprints (written by ms_fingerprints)."""
    try:
        cache = json.loads(Path(record).read_text())
        return cache["key"]["ms"], Fingerprints(cache["layout"], tuple(cache["channels"]))
    except (OSError, ValueError, KeyError) as err:
        raise fail(record, f"not a spectropol fingerprint record ({err})") from None


def input_ms(inputs: dict) -> str:
    """The MS a job reads, from its inputs: ``ms`` itself, or the MS its ``fingerprints`` record
    describes (where it is now: a re-delivered copy is read at its new path)."""
    if inputs.get("ms"):
        return str(inputs["ms"])
    return read_fingerprints(inputs["fingerprints"])[0]
