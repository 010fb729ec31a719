"""FITS-style world coordinates for our images: RA---SIN / DEC--SIN, FREQ, STOKES, FARDEPTH.

Headers are plain dicts (JSON-able, stored in Zarr attributes) and become astropy Headers at the
FITS edge. Pixel (x, y) 0-based is FITS pixel (x + 1, y + 1); the phase centre is at (nx/2, ny/2).
"""

from __future__ import annotations

import numpy as np

STOKES_CODES = {"I": 1, "Q": 2, "U": 3, "V": 4}


def celestial_header(ra_rad: float, dec_rad: float, npix_x: int, npix_y: int, cell_rad: float) -> dict:
    """The two celestial axes of an image centred on (ra, dec) with square pixels of cell_rad."""
    cell_deg = float(np.rad2deg(cell_rad))
    return {
        "CTYPE1": "RA---SIN", "CRVAL1": float(np.rad2deg(ra_rad)) % 360.0, "CDELT1": -cell_deg,
        "CRPIX1": npix_x // 2 + 1.0, "CUNIT1": "deg",
        "CTYPE2": "DEC--SIN", "CRVAL2": float(np.rad2deg(dec_rad)), "CDELT2": cell_deg,
        "CRPIX2": npix_y // 2 + 1.0, "CUNIT2": "deg",
        "RADESYS": "FK5", "EQUINOX": 2000.0, "LONPOLE": 180.0, "LATPOLE": float(np.rad2deg(dec_rad)),
    }


def observation_keywords(mjd_s: float, telescope: str) -> dict:
    """DATE-OBS, MJD-OBS and TELESCOP for a header (astropy otherwise fills and warns)."""
    from astropy.time import Time

    start = Time(mjd_s / 86400.0, format="mjd", scale="utc")
    return {"DATE-OBS": start.isot, "MJD-OBS": float(start.mjd), "TELESCOP": telescope or "unknown"}


def spectral_axis(axis: int, freqs_hz: np.ndarray) -> dict:
    """A FREQ axis; channels must be evenly spaced (checked by the caller for FITS export)."""
    freqs_hz = np.asarray(freqs_hz, dtype=np.float64)
    step = float(freqs_hz[1] - freqs_hz[0]) if len(freqs_hz) > 1 else 1.0
    return {f"CTYPE{axis}": "FREQ", f"CRVAL{axis}": float(freqs_hz[0]), f"CDELT{axis}": step,
            f"CRPIX{axis}": 1.0, f"CUNIT{axis}": "Hz", "SPECSYS": "TOPOCENT"}


def stokes_axis(axis: int, labels: list[str] | tuple[str, ...]) -> dict:
    """A STOKES axis; the labels must be consecutive in I, Q, U, V order."""
    first = STOKES_CODES[labels[0]]
    if [STOKES_CODES[s] for s in labels] != list(range(first, first + len(labels))):
        raise ValueError(f"Stokes {labels} are not consecutive in I, Q, U, V order")
    return {f"CTYPE{axis}": "STOKES", f"CRVAL{axis}": float(first), f"CDELT{axis}": 1.0, f"CRPIX{axis}": 1.0,
            f"CUNIT{axis}": ""}


def fardepth_axis(axis: int, phi: np.ndarray) -> dict:
    """A FARDEPTH axis (rad/m^2); the depths must be evenly spaced."""
    phi = np.asarray(phi, dtype=np.float64)
    step = float(phi[1] - phi[0]) if len(phi) > 1 else 1.0
    return {f"CTYPE{axis}": "FARDEPTH", f"CRVAL{axis}": float(phi[0]), f"CDELT{axis}": step, f"CRPIX{axis}": 1.0,
            f"CUNIT{axis}": "rad/m2"}


def beam_keywords(beam: dict | None) -> dict:
    if not beam or not np.isfinite(beam.get("bmaj_deg", np.nan)):
        return {}
    return {"BMAJ": beam["bmaj_deg"], "BMIN": beam["bmin_deg"], "BPA": beam["bpa_deg"]}


def to_fits_header(keywords: dict):
    """An astropy Header from a dict, keeping insertion order; provenance is flattened to HISTORY."""
    from astropy.io import fits

    header = fits.Header()
    for key, value in keywords.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                header.add_history(f"{key}.{sub_key} = {sub_value}")
        else:
            header[key] = value
    return header


def sin_offset(ra_deg: float, dec_deg: float, centre_deg: tuple[float, float]) -> tuple[float, float]:
    """Direction cosines (l east, m north) of (RA, Dec) in the SIN projection about ``centre_deg``."""
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    ra0, dec0 = np.deg2rad(centre_deg[0]), np.deg2rad(centre_deg[1])
    l = np.cos(dec) * np.sin(ra - ra0)
    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
    return float(l), float(m)
