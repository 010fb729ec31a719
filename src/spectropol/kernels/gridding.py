"""Gridding with ducc0's wgridder (Arras et al. 2021): dirty images of visibilities and their exact
adjoint, the prediction of visibilities from a model image. Conventions (the visibility sign, UVW,
image orientation) are those of spectropol.measurement, applied through ducc_uvw."""

from __future__ import annotations

import numpy as np

from ..measurement import ducc_uvw


def dirty_image(
    uvw: np.ndarray, freq: float, vis: np.ndarray, weight: np.ndarray, npix: int, cell_rad: float, *,
    wgridding: bool = True, epsilon: float = 2e-5, nthreads: int = 1,
) -> np.ndarray:
    """Dirty image array[y, x] of sum w V exp(-i phase) / sum w (Jy/beam for a PSF peaking at 1).

    Single precision unless epsilon < 1e-5 demands double (ducc0's limit for complex64).
    """
    from ducc0.wgridder.experimental import vis2dirty

    total = float(weight.sum())
    if total <= 0:
        return np.full((npix, npix), np.nan, dtype=np.float32)
    ctype = np.complex64 if epsilon >= 1e-5 else np.complex128
    image = vis2dirty(
        uvw=ducc_uvw(uvw), freq=np.array([freq]), vis=np.ascontiguousarray(vis, dtype=ctype)[:, None],
        wgt=np.ascontiguousarray(weight, dtype=ctype().real.dtype)[:, None],
        npix_x=npix, npix_y=npix, pixsize_x=cell_rad, pixsize_y=cell_rad, epsilon=epsilon,
        do_wgridding=wgridding, divide_by_n=False, nthreads=nthreads,
    )
    return (image / total).astype(np.float32)


def predict_visibilities(
    uvw: np.ndarray, freq: float, image: np.ndarray, cell_rad: float, *, wgridding: bool = True, epsilon: float = 2e-5,
    nthreads: int = 1,
) -> np.ndarray:
    """Visibilities (nrow,) of a model image array[y, x] in Jy/pixel: the exact adjoint of
    dirty_image's gridding (ducc0's dirty2vis with the same conventions)."""
    from ducc0.wgridder.experimental import dirty2vis

    double = epsilon < 1e-5
    model = np.ascontiguousarray(image, dtype=np.float64 if double else np.float32)
    vis = dirty2vis(uvw=ducc_uvw(uvw), freq=np.array([freq]), dirty=model, pixsize_x=cell_rad, pixsize_y=cell_rad,
                    epsilon=epsilon, do_wgridding=wgridding, divide_by_n=False, nthreads=nthreads)
    return vis[:, 0]
