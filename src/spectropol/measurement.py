"""The measurement equation as spectropol reads and writes Measurement Sets, in one place.

For a sky of point sources at direction cosines (l, m) (l towards east, m towards north) and the
UVW stored in the MS (metres), a visibility at wavelength lambda is

    V = sum_s S_s exp(+2 pi i (u l + v m + w (n - 1)) / lambda),   n = sqrt(1 - l^2 - m^2).

The MS stores UVW as antenna1 - antenna2 (the opposite of the textbook baseline x2 - x1 with a
negative exponent), which is how WSClean and CASA read it: with this sign they image sources where
they are on the sky (measured in ../shared/DESIGN.md and tested in tests/test_wsclean.py).

Image pixels follow FITS/radio convention: array[y, x] with x increasing towards west (RA
decreasing), so l = -(x - nx/2) cell and m = (y - ny/2) cell.
"""

from __future__ import annotations

import numpy as np

from .constants import SPEED_OF_LIGHT


def n_minus_one(l: np.ndarray, m: np.ndarray) -> np.ndarray:
    """n - 1 = sqrt(1 - l^2 - m^2) - 1, computed without cancellation for small l, m."""
    r2 = np.asarray(l) ** 2 + np.asarray(m) ** 2
    return -r2 / (1.0 + np.sqrt(1.0 - r2))


def predict_visibilities(
    uvw: np.ndarray, freqs: np.ndarray, l: np.ndarray, m: np.ndarray, flux: np.ndarray
) -> np.ndarray:
    """Visibilities of point sources by direct Fourier sum.

    uvw: (nrow, 3) metres; freqs: (nchan,) Hz; l, m: (nsrc,) direction cosines;
    flux: (nsrc, nchan, ...) any trailing axes (e.g. Stokes). Returns complex128 (nrow, nchan, ...).
    Double precision: phases reach 1e5 turns on long baselines.
    """
    l = np.asarray(l, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    flux = np.asarray(flux)
    path = uvw[:, 0:1] * l + uvw[:, 1:2] * m + uvw[:, 2:3] * n_minus_one(l, m)  # (nrow, nsrc) metres
    out = np.zeros((uvw.shape[0], len(freqs)) + flux.shape[2:], dtype=np.complex128)
    for c, freq in enumerate(freqs):
        phasor = np.exp(2j * np.pi * path * (freq / SPEED_OF_LIGHT))  # (nrow, nsrc)
        out[:, c] = np.tensordot(phasor, flux[:, c], axes=(1, 0))
    return out


def pixel_direction_cosines(x: np.ndarray, y: np.ndarray, npix_x: int, npix_y: int, cell_rad: float):
    """(l, m) of pixel centres (x, y) for our image convention (see module docstring)."""
    return -(np.asarray(x) - npix_x // 2) * cell_rad, (np.asarray(y) - npix_y // 2) * cell_rad


def direct_dirty_image(
    uvw: np.ndarray, freq: float, vis: np.ndarray, weight: np.ndarray, x: np.ndarray, y: np.ndarray,
    npix_x: int, npix_y: int, cell_rad: float,
) -> np.ndarray:
    """Dirty image at pixels (x, y) by direct Fourier sum: sum w Re(V e^{-i phase}) / sum w.

    The exact adjoint of predict_visibilities, used to test the gridder on a few pixels.
    """
    l, m = pixel_direction_cosines(x, y, npix_x, npix_y, cell_rad)
    path = np.outer(uvw[:, 0], l) + np.outer(uvw[:, 1], m) + np.outer(uvw[:, 2], n_minus_one(l, m))
    phasor = np.exp(-2j * np.pi * path * (freq / SPEED_OF_LIGHT))
    return ((weight * vis) @ phasor).real / weight.sum()


def ducc_uvw(uvw: np.ndarray) -> np.ndarray:
    """UVW rearranged so that ducc0's wgridder returns images as array[y, x] in our convention.

    ducc0 uses V = sum I exp(-2 pi i (u l' + v m' - w (n - 1))) with l' along the first image
    axis (checked against the direct sum in tests/test_imaging.py). Our first axis is m and the
    second -l, with a positive exponent: so u' = -v, v' = u, and w keeps its sign.
    """
    out = np.empty_like(uvw, dtype=np.float64)
    out[:, 0] = -uvw[:, 1]
    out[:, 1] = uvw[:, 0]
    out[:, 2] = uvw[:, 2]
    return out
