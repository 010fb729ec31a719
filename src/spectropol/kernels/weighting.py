"""Imaging weights: natural, uniform and Briggs robust (Briggs 1995), on the image's uv grid."""

from __future__ import annotations

import numpy as np

from ..constants import SPEED_OF_LIGHT


def gridded_weight_density(uvw: np.ndarray, freq: float, weight: np.ndarray, npix: int, cell_rad: float):
    """Sum of weights per uv cell of an npix x npix grid (cell 1 / (npix cell_rad) wavelengths),
    with each visibility and its Hermitian conjugate; returns (density, cell index per visibility)."""
    scale = freq / SPEED_OF_LIGHT * npix * cell_rad
    iu = np.rint(uvw[:, 0] * scale).astype(np.int64)
    iv = np.rint(uvw[:, 1] * scale).astype(np.int64)
    half = npix // 2
    iu = np.clip(iu + half, 0, npix - 1)
    iv = np.clip(iv + half, 0, npix - 1)
    mirror_u = np.clip(2 * half - iu, 0, npix - 1)
    mirror_v = np.clip(2 * half - iv, 0, npix - 1)
    cells = iu * npix + iv
    mirror = mirror_u * npix + mirror_v
    density = np.bincount(cells, weights=weight, minlength=npix * npix)
    density += np.bincount(mirror, weights=weight, minlength=npix * npix)
    return density, cells


def imaging_weights(
    uvw: np.ndarray, freq: float, weight: np.ndarray, *, scheme: str, npix: int, cell_rad: float, robust: float = 0.0,
    density_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Imaging weights for visibilities with inverse-variance ``weight`` (nrow,).

    scheme: 'natural' (the weights as they are), 'uniform' (divided by the weight summed in their uv
    cell) or 'briggs' with ``robust`` from -2 (near uniform) to 2 (near natural), as in WSClean and
    CASA: w / (1 + W_cell f^2), f^2 = (5 10^-robust)^2 / (sum W_cell^2 / sum w).
    ``density_weight`` (default ``weight``) sets the uv density, so that Q, U, V can share the
    density of Stokes I and keep the same PSF.
    """
    weight = np.asarray(weight, dtype=np.float64)
    if scheme == "natural":
        return weight
    density_from = weight if density_weight is None else np.asarray(density_weight, dtype=np.float64)
    density, cells = gridded_weight_density(uvw, freq, density_from, npix, cell_rad)
    local = density[cells]
    if scheme == "uniform":
        return np.where(local > 0, weight / np.where(local > 0, local, 1.0), 0.0)
    if scheme == "briggs":
        total = density.sum()
        if total <= 0:
            return np.zeros_like(weight)
        f2 = (5.0 * 10.0 ** (-robust)) ** 2 / ((density**2).sum() / total)
        return weight / (1.0 + local * f2)
    raise ValueError(f"unknown weighting scheme {scheme!r} (natural, uniform or briggs)")


def uv_range_mask(uvw: np.ndarray, freq: float, minuv_l: float | None, maxuv_l: float | None) -> np.ndarray:
    """True for visibilities whose projected baseline (u, v) in wavelengths is within the range."""
    length = np.hypot(uvw[:, 0], uvw[:, 1]) * (freq / SPEED_OF_LIGHT)
    keep = np.ones(len(uvw), dtype=bool)
    if minuv_l is not None:
        keep &= length >= minuv_l
    if maxuv_l is not None:
        keep &= length <= maxuv_l
    return keep
