"""FITS images and cubes made elsewhere (WSClean channel images, CASA, WSClean or POSSUM cubes with a
FREQ axis) as the cube stage reads them: the planes of one Stokes parameter, their frequencies
(from the header, or from a text file of one frequency in Hz per line, as RM-Tools reads them),
beams and celestial WCS, read a plane at a time from a memory map."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from ..errors import fail

# FITS STOKES axis values (the AIPS convention FITS adopted): 1..4 are I, Q, U, V.
STOKES_CODES = {1: "I", 2: "Q", 3: "U", 4: "V"}
# Celestial keywords kept as the cube's WCS (the rest describe the axes spectropol rebuilds).
CELESTIAL_KEYS = ("CTYPE", "CRVAL", "CRPIX", "CDELT", "CUNIT")


@dataclasses.dataclass(frozen=True)
class FitsPlane:
    """One image plane of a FITS file: where it is and what it is."""

    path: str
    index: tuple  # numpy index of the plane in the file's data (the celestial axes sliced whole)
    freq_hz: float
    beam_deg: tuple[float, float, float]  # bmaj, bmin, bpa; NaN if the file says nothing
    plane_in_file: int


@dataclasses.dataclass(frozen=True)
class FitsStokes:
    """The planes of one Stokes parameter, in increasing frequency, and their common geometry."""

    stokes: str
    planes: tuple[FitsPlane, ...]
    shape: tuple[int, int]  # (ny, nx)
    wcs: dict  # celestial keywords, as the cube's attrs["wcs"]
    files: tuple[str, ...]

    @property
    def freqs_hz(self) -> np.ndarray:
        return np.array([p.freq_hz for p in self.planes])


def read_frequency_file(path: str | os.PathLike) -> np.ndarray:
    """Frequencies (Hz), one per line (blank lines and '#' comments ignored), as RM-Tools' 3-D tools read them."""
    values = []
    for number, line in enumerate(open(path, encoding="utf-8"), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            values.append(float(text.split()[0]))
        except ValueError:
            raise fail(path, f"line {number} is not a frequency in Hz: {text[:40]!r}") from None
    freqs = np.array(values)
    if freqs.size == 0 or not np.all(np.isfinite(freqs)) or np.any(freqs <= 0):
        raise fail(path, "holds no frequencies, or one that is not a positive number of Hz")
    return freqs


def axis_values(header, axis: int) -> np.ndarray:
    """World values of a linear FITS axis (1-based ``axis``) at each pixel."""
    n = header[f"NAXIS{axis}"]
    crpix, crval, cdelt = (header.get(f"{key}{axis}", default) for key, default in
                           (("CRPIX", 1.0), ("CRVAL", 0.0), ("CDELT", 1.0)))
    return crval + (np.arange(n) + 1 - crpix) * cdelt


def _beam_rows(hdus) -> dict[int, tuple[float, float, float]]:
    """Per-channel beams of a CASA-style BEAMS table (arcsec, deg), by channel."""
    for hdu in hdus[1:]:
        if hdu.name == "BEAMS":
            data = hdu.data
            return {int(c): (float(a) / 3600.0, float(b) / 3600.0, float(p))
                    for c, a, b, p in zip(data["CHAN"], data["BMAJ"], data["BMIN"], data["BPA"])}
    return {}


def open_sky_fits(path: str, memmap: bool = True, what: str = ""):
    """The HDUs of a FITS file whose primary HDU is an image with RA and DEC as its first two axes,
    and those axes' CTYPEs (upper case, 1-based in a dict); a one-line error otherwise (``what`` the
    file should have been, for the message)."""
    from astropy.io import fits

    try:
        hdus = fits.open(path, memmap=memmap)
    except (OSError, ValueError) as err:
        raise fail(path, f"is not a FITS file astropy can read ({err})") from None
    header = hdus[0].header
    naxis = header.get("NAXIS", 0)
    ctypes = {axis: str(header.get(f"CTYPE{axis}", "")).upper() for axis in range(1, naxis + 1)}
    problem = None
    if naxis < 2 or hdus[0].data is None:
        problem = f"has no image in its primary HDU{what}"
    elif not (ctypes[1].startswith("RA") and ctypes[2].startswith("DEC")):
        problem = f"its first two axes are {ctypes[1] or '?'} and {ctypes[2] or '?'}, not RA and DEC"
    if problem:
        hdus.close()
        raise fail(path, problem)
    return hdus, ctypes


def describe_fits(path: str | os.PathLike, stokes: str, freqs_hz: np.ndarray | None = None) -> tuple[list[FitsPlane],
                                                                                                     tuple, dict]:
    """The planes of ``stokes`` in one FITS file: (planes, (ny, nx), celestial WCS keywords).

    The file's first two axes are the sky; a FREQ axis (any length) and a STOKES axis are optional,
    other axes must have length 1. Without a FREQ axis the frequency is ``freqs_hz`` or, for a single
    plane, the header's RESTFRQ/CRVAL of a FREQ keyword; with a STOKES axis the plane of ``stokes``
    is taken (the file must hold it)."""
    path = str(path)
    hdus, ctypes = open_sky_fits(path)
    with hdus:
        header = hdus[0].header
        naxis = header["NAXIS"]
        index: list = [slice(None), slice(None)]  # FITS axis order; reversed for numpy below
        freq_axis = None
        for axis in range(3, naxis + 1):
            n = header[f"NAXIS{axis}"]
            if ctypes[axis].startswith("FREQ"):
                freq_axis = axis
                index.append(None)
            elif ctypes[axis] == "STOKES":
                codes = [int(round(v)) for v in axis_values(header, axis)]
                names = [STOKES_CODES.get(c, str(c)) for c in codes]
                if stokes not in names:
                    raise fail(path, f"holds Stokes {', '.join(names)}, not {stokes}")
                index.append(names.index(stokes))
            elif n == 1:
                index.append(0)
            elif freq_axis is None and ctypes[axis] in ("", "LINEAR", "CHANNEL"):
                if freqs_hz is None:
                    raise fail(path, f"has no FREQ axis; give the frequencies of its {n} planes in a text file "
                                     "(Hz, one per line)")
                freq_axis = axis  # a plain channel axis, its frequencies in a file (as RM-Tools allows)
                index.append(None)
            else:
                raise fail(path, f"axis {axis} ({ctypes[axis] or 'unnamed'}) has {n} pixels; only FREQ and STOKES "
                                 "may be longer than 1")
        if freq_axis is not None and ctypes[freq_axis].startswith("FREQ"):
            header_freqs = axis_values(header, freq_axis)
            if str(header.get(f"CUNIT{freq_axis}", "Hz")).strip().lower() not in ("hz", ""):
                raise fail(path, f"its FREQ axis is in {header[f'CUNIT{freq_axis}']}, not Hz")
        else:
            header_freqs = None
        nplanes = header[f"NAXIS{freq_axis}"] if freq_axis else 1
        if freqs_hz is not None:
            # freqs_hz: the frequency list from this file's first plane on; this file takes the first nplanes
            if len(freqs_hz) < nplanes:
                raise fail(path, f"has {nplanes} channel planes but the frequency list gives {len(freqs_hz)}")
            plane_freqs = np.asarray(freqs_hz[:nplanes], dtype=np.float64)
        elif header_freqs is not None:
            plane_freqs = header_freqs
        else:
            raise fail(path, "has no FREQ axis; give the frequencies in a text file (Hz, one per line)")
        beams = _beam_rows(hdus)
        default_beam = tuple(float(header.get(k, np.nan)) for k in ("BMAJ", "BMIN", "BPA"))
        planes = []
        for k in range(nplanes):
            at = list(index)
            if freq_axis is not None:
                at[freq_axis - 1] = k
            planes.append(FitsPlane(path=path, index=tuple(reversed(at)), freq_hz=float(plane_freqs[k]),
                                    beam_deg=beams.get(k, default_beam), plane_in_file=k))
        wcs = {f"{key}{axis}": header[f"{key}{axis}"] for axis in (1, 2) for key in CELESTIAL_KEYS
               if f"{key}{axis}" in header}
        # the telescope names its primary beam (catalogue.primary_beam); the date its epoch
        for key in ("RADESYS", "EQUINOX", "LONPOLE", "LATPOLE", "TELESCOP", "DATE-OBS", "MJD-OBS"):
            if key in header:
                wcs[key] = header[key]
        if "CDELT1" not in wcs or "CDELT2" not in wcs:
            raise fail(path, "gives no CDELT1 and CDELT2 (pixel size); CD matrices are not read")
        return planes, (header["NAXIS2"], header["NAXIS1"]), wcs


def collect_stokes(paths: Sequence[str | os.PathLike], stokes: str,
                   freqs_hz: np.ndarray | None = None) -> FitsStokes:
    """The planes of ``stokes`` across ``paths`` (one cube, or one file per channel) in increasing
    frequency; every file on the same pixel grid. ``freqs_hz`` (a frequency file's values) gives the
    frequency of every plane in the order of the files and their planes."""
    planes: list[FitsPlane] = []
    shape = wcs = None
    offset = 0
    for path in paths:
        given = None if freqs_hz is None else freqs_hz[offset:]
        file_planes, file_shape, file_wcs = describe_fits(path, stokes, given)
        offset += len(file_planes)
        if shape is None:
            shape, wcs = file_shape, file_wcs
        elif file_shape != shape or not _same_wcs(file_wcs, wcs):
            raise fail(path, f"is not on the pixel grid of {paths[0]} ({file_shape[1]}x{file_shape[0]} pixels, "
                             f"centre {file_wcs.get('CRVAL1')}, {file_wcs.get('CRVAL2')})")
        planes.extend(file_planes)
    if freqs_hz is not None and offset != len(freqs_hz):
        raise fail(paths[0], f"the files hold {offset} planes but the frequency list gives {len(freqs_hz)}")
    planes.sort(key=lambda p: p.freq_hz)
    freqs = np.array([p.freq_hz for p in planes])
    if np.any(np.diff(freqs) <= 0):
        duplicate = freqs[1:][np.diff(freqs) <= 0][0]
        raise fail(paths[0], f"Stokes {stokes}: two planes have the frequency {duplicate / 1e6:.6f} MHz")
    return FitsStokes(stokes=stokes, planes=tuple(planes), shape=shape, wcs=wcs, files=tuple(str(p) for p in paths))


def _same_wcs(a: dict, b: dict) -> bool:
    for key in set(a) | set(b):
        x, y = a.get(key), b.get(key)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if not np.isclose(x, y, rtol=1e-9, atol=1e-12):
                return False
        elif str(x).strip() != str(y).strip():
            return False
    return True


def read_plane(plane: FitsPlane) -> np.ndarray:
    """The plane's pixels (ny, nx) float32; blanks stay NaN."""
    from astropy.io import fits

    with fits.open(plane.path, memmap=True) as hdus:
        return np.asarray(hdus[0].data[plane.index], dtype=np.float32)
