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


def qa_documents(paths) -> list[str]:
    """QA document paths from a list of documents and folders holding them at any depth (a block
    job writes a folder of per-channel documents), folders expanded in name order."""
    from pathlib import Path

    found = []
    for path in map(Path, paths):
        found.extend(sorted(str(p) for p in path.rglob("*.json")) if path.is_dir() else [str(path)])
    return found
