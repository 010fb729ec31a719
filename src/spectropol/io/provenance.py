"""Reading back what made a product: the provenance every product records (io.stores.provenance),
from a Zarr store's attributes, a FITS file's PROVENANCE history cards, an ECSV table's metadata or
a JSON document; and for a catalogue row, the provenance of the field catalogue that measured it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import fail
from .stores import open_store

_CARD = re.compile(r"^PROVENANCE\.(\w+) = (.*)$")


def _from_fits(path: Path) -> dict | None:
    from astropy.io import fits

    with fits.open(path) as hdus:
        for hdu in hdus:
            lines = [str(line) for line in hdu.header.get("HISTORY", [])]
            record, key = {}, None
            for line in lines:  # astropy wraps a long card's value onto the next HISTORY cards
                match = _CARD.match(line)
                if match:
                    key = match[1]
                    record[key] = match[2]
                elif key is not None:
                    record[key] += line
            if record:
                return record
    return None


def read_provenance(path: str | Path) -> dict:
    """The provenance recorded in the product at ``path``; a one-line error where it has none."""
    path = Path(path)
    if not path.exists():
        raise fail(path, "no such product")
    record = None
    if path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists()):
        record = open_store(path, "product").attrs.get("provenance")
    elif path.suffix.lower() in (".fits", ".fit", ".fts"):
        record = _from_fits(path)
    elif path.suffix.lower() == ".ecsv":
        from astropy.table import Table

        record = Table.read(path, format="ascii.ecsv").meta.get("provenance")
    elif path.suffix.lower() == ".json":
        record = json.loads(path.read_text()).get("provenance")
    if not record:
        raise fail(path, "records no provenance (products: Zarr stores, FITS images and tables, ECSV catalogues, "
                         "QA and survey JSON)")
    return dict(record)


def row_provenance(catalogue: str | Path, cat_id: str) -> dict:
    """A catalogue row (by cat_id), the catalogue's provenance and, where the row's dataref names the
    field catalogue that measured it (a survey catalogue's rows: relative to the results folder,
    which holds survey/), that catalogue's provenance as ``made_by``."""
    from astropy.table import Table

    catalogue = Path(catalogue)
    table = Table.read(catalogue, format="fits" if catalogue.suffix.lower() == ".fits" else "ascii.ecsv")
    matches = [row for row in table if str(row["cat_id"]).strip() == cat_id]
    if not matches:
        raise fail(catalogue, f"no row with cat_id {cat_id!r}")
    row = {name: (value.item() if hasattr(value, "item") else value) for name, value in zip(table.colnames, matches[0])}
    record = {"product": str(catalogue), "row": row, "catalogue": read_provenance(catalogue)}
    dataref = str(row.get("dataref") or "")
    record["made_by"] = record["catalogue"]
    if "#" in dataref:
        referenced = catalogue.resolve().parent.parent / dataref.split("#", 1)[0]
        if referenced.exists():
            record["made_by"] = read_provenance(referenced) | {"catalogue": str(referenced)}
    return record
