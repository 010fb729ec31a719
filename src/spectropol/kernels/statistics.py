"""Robust statistics of images and spectra: the MAD rms and the summary figures QA documents carry."""

from __future__ import annotations

import numpy as np

from ..constants import MAD_TO_SIGMA


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
        return {"min": nan, "max": nan, "mean": nan, "std": nan, "mad_rms": nan, "peak": nan, "peak_x": None,
                "peak_y": None}
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
