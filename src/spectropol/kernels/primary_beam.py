"""Primary-beam response of a telescope's antennas: analytic models from the dish diameter.

The catalogue divides each source's I, Q and U spectra by the response at its position and in each
channel, so that fluxes and spectral indices are those of the sky, not of the sky seen through the
beam (whose half-power width shrinks as 1/frequency, steepening the apparent spectrum off axis).
A beam measured elsewhere (holography, linmos) comes in as a FITS image (io/beam_fits.py); the
telescope's own models (EveryBeam, katbeam) are written as one by stages/primary_beam.py.
"""

from __future__ import annotations

import numpy as np

from ..constants import SPEED_OF_LIGHT

# FWHM of a Gaussian beam in units of lambda / D. A uniformly illuminated circular aperture
# (Airy pattern) has 1.029; real dishes are tapered and slightly wider: the VLA's 25 m antennas have
# 42 arcmin at 1 GHz (NRAO, VLA Observational Status Summary), 1.02 lambda/D.
GAUSSIAN_FWHM_PER_LAMBDA_OVER_D = 1.02
# A few telescopes' dish diameters (m), for FITS cubes whose header names the telescope but whose
# Measurement Set is not at hand. Aperture arrays (LOFAR, MWA, SKA-Low) have no dish: their beams
# depend on the pointing and need a beam FITS.
DISH_DIAMETER_M = {"VLA": 25.0, "EVLA": 25.0, "JVLA": 25.0, "MEERKAT": 13.5, "ASKAP": 12.0, "ATCA": 22.0,
                   "WSRT": 25.0, "APERTIF": 25.0, "GMRT": 45.0, "UGMRT": 45.0, "ALMA": 12.0}
BEAM_MODELS = ("none", "airy", "gaussian", "fits", "everybeam", "katbeam")
# the models whose beam is a FITS cube the catalogue reads: the user's, or one stages/primary_beam.py writes
BEAM_FROM_FITS = ("fits", "everybeam", "katbeam")


def airy_response(theta_rad: np.ndarray, freqs_hz: np.ndarray, dish_diameter_m: float) -> np.ndarray:
    """Power response (1 on axis) of a uniformly illuminated circular aperture, (2 J1(x) / x)^2 with
    x = pi D sin(theta) / lambda; shape (nfreq, ntheta). Its half-power width is 1.029 lambda / D and
    its first null at 1.220 lambda / D."""
    from scipy.special import j1

    x = np.pi * dish_diameter_m * np.sin(np.asarray(theta_rad, dtype=np.float64))[None, :] \
        * np.asarray(freqs_hz, dtype=np.float64)[:, None] / SPEED_OF_LIGHT
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 1.0, (2.0 * j1(safe) / safe) ** 2)


def gaussian_response(theta_rad: np.ndarray, freqs_hz: np.ndarray, dish_diameter_m: float,
                      fwhm_per_lambda_over_d: float = GAUSSIAN_FWHM_PER_LAMBDA_OVER_D) -> np.ndarray:
    """Power response of a Gaussian beam of FWHM ``fwhm_per_lambda_over_d`` lambda / D; (nfreq, ntheta)."""
    fwhm_rad = fwhm_per_lambda_over_d * SPEED_OF_LIGHT / (np.asarray(freqs_hz, dtype=np.float64) * dish_diameter_m)
    theta = np.asarray(theta_rad, dtype=np.float64)
    return np.exp(-4.0 * np.log(2.0) * (theta[None, :] / fwhm_rad[:, None]) ** 2)


def analytic_response(model: str, theta_rad: np.ndarray, freqs_hz: np.ndarray, dish_diameter_m: float) -> np.ndarray:
    """The response of analytic ``model`` ('airy' or 'gaussian') at angles ``theta_rad`` from the
    pointing centre, in every channel: (nfreq, ntheta)."""
    if not (np.isfinite(dish_diameter_m) and dish_diameter_m > 0):
        raise ValueError(f"primary beam {model!r} needs a positive dish diameter, not {dish_diameter_m}")
    if model == "airy":
        return airy_response(theta_rad, freqs_hz, dish_diameter_m)
    if model == "gaussian":
        return gaussian_response(theta_rad, freqs_hz, dish_diameter_m)
    raise ValueError(f"no analytic primary beam {model!r}; choose 'airy' or 'gaussian'")


def known_dish_diameter_m(telescope: str) -> float:
    """The dish diameter of a telescope by name (DISH_DIAMETER_M), NaN when not known."""
    key = "".join(ch for ch in telescope.upper() if ch.isalnum())
    return DISH_DIAMETER_M.get(key, float("nan"))
