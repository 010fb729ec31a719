"""A primary beam given as a FITS image (from holography, EveryBeam, katbeam, linmos or WSClean's
``-pb.fits``): its response at any sky position and frequency.

The first two axes are the sky (any projection astropy knows); a FREQ axis is optional (one plane:
the same response at every frequency; several: linear interpolation between them, the nearest
plane beyond their range); any other axis (STOKES) must be degenerate or its first plane is taken.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from ..errors import fail
from .fits_cubes import CELESTIAL_KEYS, axis_values, open_sky_fits


@dataclasses.dataclass(frozen=True)
class BeamImage:
    """The planes of a beam FITS file (nfreq, ny, nx), their frequencies and celestial WCS header."""

    path: str
    planes: np.ndarray
    freqs_hz: np.ndarray  # increasing; NaN for a single plane without a FREQ axis
    celestial: dict

    def response(self, freqs_hz: np.ndarray, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """The response at each position in each channel, (nfreq, nsources); NaN off the image."""
        from astropy.io.fits import Header
        from astropy.wcs import WCS
        from scipy.ndimage import map_coordinates

        wcs = WCS(Header(self.celestial))
        x, y = wcs.all_world2pix(np.asarray(ra_deg, dtype=np.float64), np.asarray(dec_deg, dtype=np.float64), 0)
        ny, nx = self.planes.shape[1:]
        inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
        at = np.stack([map_coordinates(plane, [y, x], order=1, mode="nearest") for plane in self.planes])
        at[:, ~inside] = np.nan  # (nplanes, nsources)
        freqs = np.asarray(freqs_hz, dtype=np.float64)
        if len(self.planes) == 1:
            return np.broadcast_to(at[0], (len(freqs), at.shape[1])).copy()
        return np.stack([np.interp(freqs, self.freqs_hz, at[:, k]) for k in range(at.shape[1])], axis=1)


def read_beam_fits(path: str | os.PathLike) -> BeamImage:
    """The beam in ``path``; a clear one-line error for a file that is not a beam image."""
    path = str(path)
    hdus, ctypes = open_sky_fits(path, memmap=False, what=", so it is no primary beam")
    with hdus:
        header, data = hdus[0].header, hdus[0].data
        naxis = header["NAXIS"]
        index: list = []  # numpy order: last FITS axis first
        freqs = np.array([np.nan])
        for axis in range(naxis, 2, -1):
            if ctypes[axis].startswith("FREQ"):
                freqs = axis_values(header, axis)
                index.append(slice(None))
            else:
                index.append(0)
        planes = np.asarray(data[tuple(index)], dtype=np.float64)
        planes = planes.reshape((-1,) + planes.shape[-2:])
        celestial = {f"{key}{axis}": header[f"{key}{axis}"] for axis in (1, 2) for key in CELESTIAL_KEYS
                     if f"{key}{axis}" in header}
        celestial |= {"NAXIS": 2, "NAXIS1": header["NAXIS1"], "NAXIS2": header["NAXIS2"]}
    if len(planes) > 1:
        order = np.argsort(freqs)
        planes, freqs = planes[order], freqs[order]
        if not (np.all(np.isfinite(freqs)) and np.all(np.diff(freqs) > 0)):
            raise fail(path, "its FREQ axis does not give distinct frequencies")
    finite = planes[np.isfinite(planes)]
    if finite.size == 0 or finite.max() <= 0 or finite.max() > 1.5:
        raise fail(path, f"holds responses up to {finite.max() if finite.size else 'nothing'}: "
                         "a primary beam is normalised to 1 on axis")
    return BeamImage(path=path, planes=planes, freqs_hz=freqs, celestial=celestial)
