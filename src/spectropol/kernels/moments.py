"""Faraday moments (Farnes et al. 2018, MNRAS 474, 3280): the mean, standard deviation, skewness
and excess kurtosis across frequency of Stokes Q, U and P = |Q + iU|, a source finder for
Faraday-complex polarised emission; and the same of Stokes I, whose mean is the band-averaged
continuum image. NaN channels are ignored pixel by pixel."""

from __future__ import annotations

import numpy as np

QUANTITIES = ("I", "Q", "U", "P")
MOMENTS = ("mean", "std", "skewness", "kurtosis")


def weighted_moments(values: np.ndarray, weights: np.ndarray | None = None, axis: int = 0) -> np.ndarray:
    """Mean, standard deviation, skewness and excess kurtosis along ``axis`` (population moments,
    as scipy.stats with bias=True), with optional weights, ignoring NaN values
    (faraday_loops.moments_rows, in double precision).

    Returns an array with a new leading axis of length 4. Pixels with no finite value are NaN;
    a constant spectrum has NaN skewness and kurtosis.
    """
    from .faraday_loops import moments_rows

    values = np.moveaxis(np.asarray(values), axis, 0)
    rest = values.shape[1:]
    flat = np.ascontiguousarray(values.reshape(values.shape[0], -1))
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)
    w = np.ones(flat.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.empty((4, flat.shape[1]))
    moments_rows(flat, w, out)
    return out.reshape((4,) + rest)


def moments_block(i: np.ndarray | None, q: np.ndarray, u: np.ndarray, wi: np.ndarray, wq: np.ndarray, wu: np.ndarray,
                  wp: np.ndarray) -> np.ndarray:
    """(nfreq, npix) I (None: no Stokes I), Q and U -> (4 quantities I, Q, U, P, 4 moments, npix) float32."""
    from .faraday_loops import moments_rows

    npix = q.shape[1]
    out = np.full((len(QUANTITIES), len(MOMENTS), npix), np.nan)
    p = np.hypot(q, u)
    for k, (values, weights) in enumerate(((i, wi), (q, wq), (u, wu), (p, wp))):
        if values is not None:
            moments_rows(np.ascontiguousarray(values), np.asarray(weights, dtype=np.float64), out[k])
    return out.astype(np.float32)
