#!/usr/bin/env python3
"""Digests of the science content of a results folder: the arrays of every Zarr product and the
rows of the catalogue, without the attributes that change from run to run (times, hosts, ids).

A restructuring that must not change products is checked by running the demo before and after
and comparing the two outputs:

    python tools/product_digest.py results > before.txt   # ... change the code, rerun ...
    python tools/product_digest.py results | diff before.txt -
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np


def array_digest(values: np.ndarray) -> str:
    values = np.ascontiguousarray(values)
    h = hashlib.sha256(str((values.dtype.str, values.shape)).encode())
    h.update(values.tobytes())
    return h.hexdigest()[:16]


def store_digests(path: Path) -> dict[str, str]:
    import zarr

    group = zarr.open_group(path, mode="r")
    return {f"{path.name}/{name}": array_digest(group[name][...]) for name in sorted(group.array_keys())}


def main(results: str) -> None:
    root = Path(results)
    digests: dict[str, str] = {}
    for store in sorted(root.glob("*/*.zarr")):
        digests |= {f"{store.parent.name}/{k}": v for k, v in store_digests(store).items()}
    csv = root / "catalogue" / "catalogue.csv"
    if csv.exists():
        digests["catalogue/catalogue.csv"] = hashlib.sha256(csv.read_bytes()).hexdigest()[:16]
    for name, digest in digests.items():
        print(f"{digest}  {name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
