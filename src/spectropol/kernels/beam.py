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


def beam_covariance(beam: dict) -> np.ndarray:
    """2x2 covariance (deg^2) of a Gaussian beam in (l east, m north) coordinates."""
    pa = np.deg2rad(beam["bpa_deg"])
    major = np.array([np.sin(pa), np.cos(pa)])
    minor = np.array([np.cos(pa), -np.sin(pa)])
    smaj, smin = beam["bmaj_deg"] / FWHM_PER_SIGMA, beam["bmin_deg"] / FWHM_PER_SIGMA
    return smaj**2 * np.outer(major, major) + smin**2 * np.outer(minor, minor)


def beam_from_covariance(covariance: np.ndarray) -> dict:
    values, vectors = np.linalg.eigh(covariance)
    values = np.clip(values, 0.0, None)
    major = vectors[:, 1]
    bpa = (np.rad2deg(np.arctan2(major[0], major[1])) + 90.0) % 180.0 - 90.0
    return {"bmaj_deg": float(np.sqrt(values[1]) * FWHM_PER_SIGMA),
            "bmin_deg": float(np.sqrt(values[0]) * FWHM_PER_SIGMA),
            "bpa_deg": float(bpa)}


def common_beam(beams: list[dict]) -> dict:
    """A beam that every beam in the list can be convolved to: the largest-area beam, enlarged in
    1% steps until it contains all the others (its covariance minus theirs is positive)."""
    covariances = [beam_covariance(b) for b in beams if np.isfinite(b["bmaj_deg"])]
    largest = max(covariances, key=np.linalg.det)
    for step in range(200):
        target = largest * (1.0 + 0.01 * step) ** 2
        if all(np.linalg.eigvalsh(target - c).min() >= -1e-15 for c in covariances):
            return beam_from_covariance(target)
    raise ValueError("no common beam found within a factor 7 of the largest beam")


def convolve_to_beam(planes: np.ndarray, beam: dict, target: dict, cell_rad: float) -> np.ndarray:
    """Images in Jy/beam (..., y, x) with restoring ``beam`` brought to the ``target`` beam.

    Done in the Fourier domain, where it is exact whatever the pixel size: each plane's transform
    is multiplied by FT(target) / FT(beam) = (area_t / area_b) exp(-2 pi^2 u^T (C_t - C_b) u),
    the image zero-padded so the convolution does not wrap round.
    """
    difference = beam_covariance(target) - beam_covariance(beam)
    if np.abs(difference).max() < 1e-12 * np.abs(beam_covariance(target)).max():
        return planes
    pixel_deg = np.rad2deg(cell_rad)
    ny, nx = planes.shape[-2:]
    pad = int(np.ceil(4 * np.sqrt(max(np.linalg.eigvalsh(difference).max(), 0.0)) / pixel_deg)) + 1
    shape = (ny + 2 * pad, nx + 2 * pad)
    fy = np.fft.fftfreq(shape[0])[:, None] / pixel_deg      # cycles per degree along m (y)
    fx = np.fft.rfftfreq(shape[1])[None, :] / pixel_deg     # along x, i.e. -l
    ul, um = -fx, fy
    quadratic = difference[0, 0] * ul**2 + 2 * difference[0, 1] * ul * um + difference[1, 1] * um**2
    scale = np.sqrt(np.linalg.det(beam_covariance(target)) / np.linalg.det(beam_covariance(beam)))
    transfer = scale * np.exp(-2.0 * np.pi**2 * quadratic)
    out = np.empty_like(planes)
    flat_in = planes.reshape(-1, ny, nx)
    flat_out = out.reshape(-1, ny, nx)
    for k, plane in enumerate(flat_in):
        if not np.isfinite(plane).any():
            flat_out[k] = plane
            continue
        padded = np.zeros(shape)
        padded[pad : pad + ny, pad : pad + nx] = np.nan_to_num(plane)
        flat_out[k] = np.fft.irfft2(np.fft.rfft2(padded) * transfer, s=shape)[pad : pad + ny, pad : pad + nx]
    return out
