"""Physical constants and conventions every layer shares, each defined once."""

from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT = 299_792_458.0  # m/s (exact, SI)
ARCSEC = np.pi / (180.0 * 3600.0)  # radians per arcsecond
MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a Gaussian times this is its standard deviation
STOKES = ("I", "Q", "U", "V")  # the order of the Stokes axis in every store and FITS cube
