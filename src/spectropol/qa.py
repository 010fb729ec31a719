"""Quality-assessment statistics of images, written as small JSON documents beside products."""

from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826  # MAD of a Gaussian times this is its standard deviation


def mad_rms(values: np.ndarray) -> float:
    """Robust rms: 1.4826 x median absolute deviation, ignoring NaN (NaN if nothing is finite)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan")
    return float(MAD_TO_SIGMA * np.median(np.abs(finite - np.median(finite))))


def image_statistics(image: np.ndarray) -> dict:
    """min, max, mean, std, MAD rms and the peak (largest |value|, signed) with its pixel (x, y)."""
    if not np.isfinite(image).any():
        nan = float("nan")
        return {"min": nan, "max": nan, "mean": nan, "std": nan, "mad_rms": nan, "peak": nan, "peak_x": None, "peak_y": None}
    y, x = np.unravel_index(np.nanargmax(np.abs(image)), image.shape)
    return {
        "min": float(np.nanmin(image)),
        "max": float(np.nanmax(image)),
        "mean": float(np.nanmean(image)),
        "std": float(np.nanstd(image)),
        "mad_rms": mad_rms(image),
        "peak": float(image[y, x]),
        "peak_x": int(x),
        "peak_y": int(y),
    }


def read_qa_documents(paths, *, recursive: bool = True) -> list[tuple[str, dict]]:
    """(path, document) of every QA document among ``paths``: JSON files with a QA schema version
    and a kind, and such files inside folders (at any depth, or directly inside when not
    ``recursive``), folders in name order. Other JSON (a store's zarr.json, a summary) is passed over."""
    import json
    from pathlib import Path

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
