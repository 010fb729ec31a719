"""Faraday moments (Farnes et al. 2018, MNRAS 474, 3280): the mean, standard deviation, skewness
and excess kurtosis across frequency of Stokes Q, U and P = |Q + iU|, a source finder for
Faraday-complex polarised emission. NaN channels are ignored pixel by pixel."""

from __future__ import annotations

import numpy as np

QUANTITIES = ("Q", "U", "P")
MOMENTS = ("mean", "std", "skewness", "kurtosis")


def weighted_moments(values: np.ndarray, weights: np.ndarray | None = None, axis: int = 0) -> np.ndarray:
    """Mean, standard deviation, skewness and excess kurtosis along ``axis`` (population moments,
    as scipy.stats with bias=True), with optional weights, ignoring NaN values.

    Returns an array with a new leading axis of length 4. Pixels with no finite value are NaN;
    a constant spectrum has NaN skewness and kurtosis.
    """
    values = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    finite = np.isfinite(values)
    if weights is None:
        w = finite.astype(np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (values.ndim - 1)) * finite
    x = np.where(finite, values, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * x).sum(axis=0) / total
        d = np.where(finite, x - mean, 0.0)
        m2 = (w * d**2).sum(axis=0) / total
        m3 = (w * d**3).sum(axis=0) / total
        m4 = (w * d**4).sum(axis=0) / total
        std = np.sqrt(m2)
        skew = np.where(m2 > 0, m3 / m2**1.5, np.nan)
        kurt = np.where(m2 > 0, m4 / m2**2 - 3.0, np.nan)
    return np.stack([mean, std, skew, kurt])


def moments_block(q: np.ndarray, u: np.ndarray, wq: np.ndarray, wu: np.ndarray, wp: np.ndarray) -> np.ndarray:
    """(nfreq, ny, nx) Q and U -> (3 quantities, 4 moments, ny, nx) float32."""
    p = np.hypot(q, u)
    return np.stack([
        weighted_moments(q, wq), weighted_moments(u, wu), weighted_moments(p, wp),
    ]).astype(np.float32)
