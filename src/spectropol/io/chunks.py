"""Regions of a Zarr v3 array read from its chunk files directly, where the array has the layout
spectropol writes (local files, regular unsharded chunks, the default chunk keys, the bytes codec
alone or followed by zstd); any other array is read by zarr itself.

Why: zarr-python 3.1 spends about 0.65 ms of Python on each chunk it reads (its asyncio tasks and
buffer wrappers), against 0.1 ms to open, read and decompress the chunk's file here (768 chunks of
128^2 float32: 0.57 s through zarr, 0.075 s this way, measured on a 256-channel cube). The Faraday
stage and the catalogue read a cube of a chunk per channel, Stokes and 128^2 or 256^2 pixels: tens
of thousands of chunks, whose overhead had been the largest part of the catalogue's time and held
the GIL from the Faraday stage's synthesis threads. The decompression is numcodecs' (zarr's own
dependency), and tests/test_cube.py checks the regions against zarr's on the same stores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

_FILL = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


class ChunkFiles:
    """Basic selections (integers and slices of step 1) of one array, read chunk file by chunk
    file; ``ChunkFiles.open`` gives zarr's array instead where the layout is not this one."""

    def __init__(self, path: Path, meta: dict):
        self.path = path
        self.shape = tuple(meta["shape"])
        self.chunks = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        codecs = meta["codecs"]
        endian = codecs[0].get("configuration", {}).get("endian", "little")
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<" if endian == "little" else ">")
        self.zstd = len(codecs) == 2
        fill = meta.get("fill_value")
        self.fill = _FILL.get(fill, fill) if isinstance(fill, str) else fill

    @staticmethod
    def open(array_path: str | os.PathLike):
        """A ChunkFiles for ``array_path`` where its layout allows, else the zarr array."""
        path = Path(array_path)
        try:
            meta = json.loads((path / "zarr.json").read_text())
            if _readable(meta):
                return ChunkFiles(path, meta)
        except (OSError, ValueError, TypeError, KeyError):
            pass
        import zarr

        return zarr.open_array(str(path), mode="r")

    def __getitem__(self, selection) -> np.ndarray:
        selection = selection if isinstance(selection, tuple) else (selection,)
        selection = selection + (slice(None),) * (len(self.shape) - len(selection))
        ranges, squeeze = [], []
        for axis, (item, size) in enumerate(zip(selection, self.shape)):
            if isinstance(item, (int, np.integer)):
                index = int(item) + size if item < 0 else int(item)
                if not 0 <= index < size:
                    raise IndexError(f"index {item} out of range for axis {axis} of size {size}")
                ranges.append((index, index + 1))
                squeeze.append(axis)
            elif isinstance(item, slice) and item.step in (None, 1):
                start, stop, _ = item.indices(size)
                ranges.append((start, max(start, stop)))
            else:
                raise TypeError(f"{self.path}: only integers and slices of step 1 are read this way")
        out = np.empty([b - a for a, b in ranges], self.dtype.newbyteorder("="))
        if out.size:
            self._fill_region(out, ranges)
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out

    def _fill_region(self, out: np.ndarray, ranges: list[tuple[int, int]]) -> None:
        import itertools

        import numcodecs

        zstd = numcodecs.Zstd() if self.zstd else None
        prefix = os.path.join(self.path, "c", "")
        spans = [range(a // c, (b - 1) // c + 1) for (a, b), c in zip(ranges, self.chunks)]
        for key in itertools.product(*spans):
            # the part of this chunk the region takes, in the chunk's and in the output's indices
            inner, outer = [], []
            for k, (a, b), c in zip(key, ranges, self.chunks):
                lo, hi = max(a, k * c), min(b, (k + 1) * c)
                inner.append(slice(lo - k * c, hi - k * c))
                outer.append(slice(lo - a, hi - a))
            try:
                with open(prefix + "/".join(map(str, key)), "rb") as chunk_file:  # (pathlib: 0.1 ms a chunk)
                    raw = chunk_file.read()
            except FileNotFoundError:  # never written, or written as the fill value
                out[tuple(outer)] = self.fill
                continue
            data = zstd.decode(raw) if zstd else raw
            out[tuple(outer)] = np.frombuffer(data, self.dtype).reshape(self.chunks)[tuple(inner)]


def _readable(meta: dict) -> bool:
    """Whether ChunkFiles reads this array's chunks (else zarr does)."""
    codecs = meta.get("codecs", [])
    names = [c.get("name") for c in codecs]
    return (meta.get("zarr_format") == 3 and meta.get("node_type") == "array"
            and meta.get("chunk_grid", {}).get("name") == "regular"
            and meta.get("chunk_key_encoding", {}).get("name") == "default"
            and meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/") == "/"
            and names in (["bytes"], ["bytes", "zstd"]) and not meta.get("storage_transformers")
            and isinstance(meta.get("fill_value"), (int, float, str)) and not isinstance(meta.get("fill_value"), bool)
            and (not isinstance(meta.get("fill_value"), str) or meta["fill_value"] in _FILL)
            and np.dtype(meta["data_type"]).kind in "fiuc")
