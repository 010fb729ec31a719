"""Restoring beam: an elliptical Gaussian fitted to the main lobe of the PSF."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def fit_restoring_beam(psf: np.ndarray, cell_rad: float, threshold: float = 0.35) -> dict:
    """Fit a Gaussian to the PSF main lobe (pixels above ``threshold`` connected to the peak).

    psf: array[y, x] normalised to 1 at the centre. ln(psf) of a Gaussian centred on the peak is a
    quadratic form, so a linear least-squares fit of -(a l^2 + 2 b l m + c m^2)/2 gives it exactly;
    major/minor axes are its eigenvectors. Returns bmaj and bmin (FWHM, deg) and bpa (deg, east of
    north, in (-90, 90]).
    """
    ny, nx = psf.shape
    cy, cx = np.unravel_index(np.nanargmax(psf), psf.shape)
    labels, _ = ndimage.label(psf > threshold * psf[cy, cx])
    lobe = labels == labels[cy, cx]
    yy, xx = np.nonzero(lobe)
    values = psf[yy, xx] / psf[cy, cx]
    # Direction offsets in pixels: l towards east = -x, m towards north = +y.
    dl = -(xx - cx).astype(np.float64)
    dm = (yy - cy).astype(np.float64)
    design = np.column_stack([dl**2, 2 * dl * dm, dm**2])
    target = -2.0 * np.log(np.clip(values, 1e-6, None))
    if len(values) < 3:
        # An unresolved main lobe (a single pixel): quote a beam of one pixel.
        pixel_deg = np.rad2deg(cell_rad)
        return {"bmaj_deg": pixel_deg, "bmin_deg": pixel_deg, "bpa_deg": 0.0}
    (a, b, c), *_ = np.linalg.lstsq(design, target, rcond=None)
    eigenvalues, eigenvectors = np.linalg.eigh(np.array([[a, b], [b, c]]))
    eigenvalues = np.clip(eigenvalues, 1e-12, None)
    sigma = 1.0 / np.sqrt(eigenvalues)  # pixels; eigh sorts ascending, so index 0 is the major axis
    major = eigenvectors[:, 0]  # (l, m) components
    bpa = np.rad2deg(np.arctan2(major[0], major[1]))  # from north (m) towards east (l)
    bpa = (bpa + 90.0) % 180.0 - 90.0
    if bpa == -90.0:
        bpa = 90.0
    pixel_deg = np.rad2deg(cell_rad)
    return {
        "bmaj_deg": float(sigma[0] * FWHM_PER_SIGMA * pixel_deg),
        "bmin_deg": float(sigma[1] * FWHM_PER_SIGMA * pixel_deg),
        "bpa_deg": float(bpa),
    }


def gaussian_beam_image(beam: dict, shape: tuple[int, int], cell_rad: float) -> np.ndarray:
    """The Gaussian ``beam`` sampled on an array[y, x] of ``shape`` centred at (ny//2, nx//2), peak 1."""
    ny, nx = shape
    pixel_deg = np.rad2deg(cell_rad)
    smaj = beam["bmaj_deg"] / pixel_deg / FWHM_PER_SIGMA
    smin = beam["bmin_deg"] / pixel_deg / FWHM_PER_SIGMA
    pa = np.deg2rad(beam["bpa_deg"])
    dm, dl = np.meshgrid(np.arange(ny) - ny // 2, -(np.arange(nx) - nx // 2), indexing="ij")
    along = dl * np.sin(pa) + dm * np.cos(pa)
    across = dl * np.cos(pa) - dm * np.sin(pa)
    return np.exp(-0.5 * ((along / smaj) ** 2 + (across / smin) ** 2))
