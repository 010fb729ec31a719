"""primary_beam: the telescope's own beam model, evaluated over the field and written as a FITS cube
that the catalogue reads as it reads a beam FITS given by the user (io/beam_fits.py).

Two models from outside, where they know the telescope:

- EveryBeam (ASTRON; van Diepen, Dijkema, Offringa et al.) for LOFAR and AARTFAAC: the station
  beam from the station layouts and element model (Hamaker) that the Measurement Set's LOFAR_*
  subtables describe, pointed where the MS's beamformer pointed. Its Python bindings also know MWA,
  OSKAR and SKA-Mid, whose element files the PyPI wheel does not ship: those take a beam FITS.
- katbeam (SARAO; the "JimBeam" holographic fits of de Villiers 2023) for MeerKAT in the L band
  (900-1650 MHz) and UHF band (550-1050 MHz): an analytic function of offset and frequency.

The Stokes I response of a baseline pq to an unpolarised source is (1/2) tr(J_p J_q^H); imaging
averages it over every cross-correlation and time, as WSClean's averaged beam does (with equal
weights here: the weights are not read). Summed over all pairs p != q it is
(|S|^2 - sum_p |J_p|^2) / 2 with S = sum_p J_p, so all N(N-1) pairs cost N station beams. The
result is divided by its value at the phase centre in each plane: the flux scale is set there
(the calibrator's direction in a LOFAR calibration is the pointing).

The grid is that of WSClean and EveryBeam (aocommon's image coordinates): l = (width/2 - x) dl
to the east, m = (y - height/2) dm to the north, SIN projection about the phase centre. Planes are
evenly spaced in frequency over the band (the FITS FREQ axis); the catalogue interpolates between
them linearly and bilinearly between grid points.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import fail
from ..io.stores import atomic_path, open_store, software_versions

log = logging.getLogger(__name__)

EVERYBEAM_TELESCOPES = ("LOFAR", "AARTFAAC")
# katbeam's models and the band each is fitted over (MHz): beyond it the fit is extrapolated
KATBEAM_MODELS = {"MKAT-AA-UHF-JIM-2020": (550.0, 1050.0), "MKAT-AA-L-JIM-2020": (900.0, 1650.0)}
KATBEAM_TELESCOPES = ("MEERKAT", "MKAT")
# the grid: 48 x 48 points over the image and a margin (bilinear interpolation of a beam sampled at
# a twentieth of its FWHM or finer is good to 0.1%); 16 planes over the band, 4 times per MS
GRID_PX = 48
GRID_MARGIN = 1.1
PLANES = 16
TIMES_PER_MS = 4


@dataclasses.dataclass(frozen=True)
class BeamGrid:
    """A square SIN grid about (ra, dec) with the WSClean/EveryBeam pixel convention."""

    ra_deg: float
    dec_deg: float
    cell_deg: float
    npix: int

    def lm_rad(self) -> tuple[np.ndarray, np.ndarray]:
        """Direction cosines of every grid point, each (npix, npix) indexed [y, x]."""
        index = np.arange(self.npix, dtype=np.float64)
        cell = np.deg2rad(self.cell_deg)
        l_rad = (self.npix / 2.0 - index) * cell
        m_rad = (index - self.npix / 2.0) * cell
        return np.broadcast_to(l_rad[None, :], (self.npix,) * 2), np.broadcast_to(m_rad[:, None], (self.npix,) * 2)

    def header(self, freqs_hz: np.ndarray) -> dict:
        """The FITS header cards of the grid with a linear FREQ axis through ``freqs_hz``."""
        step = float(freqs_hz[1] - freqs_hz[0]) if len(freqs_hz) > 1 else 1.0
        return {"CTYPE1": "RA---SIN", "CRVAL1": self.ra_deg, "CDELT1": -self.cell_deg, "CRPIX1": self.npix / 2 + 1,
                "CUNIT1": "deg", "CTYPE2": "DEC--SIN", "CRVAL2": self.dec_deg, "CDELT2": self.cell_deg,
                "CRPIX2": self.npix / 2 + 1, "CUNIT2": "deg", "CTYPE3": "FREQ", "CRVAL3": float(freqs_hz[0]),
                "CDELT3": step, "CRPIX3": 1.0, "CUNIT3": "Hz", "RADESYS": "FK5", "EQUINOX": 2000.0}


def beam_grid(wcs: dict, npix: int = GRID_PX, margin: float = GRID_MARGIN) -> BeamGrid:
    """The grid that covers the image the cube's ``wcs`` describes, centred on its reference
    position (the phase centre of an image the workflow made)."""
    width_deg = max(abs(float(wcs["CDELT1"])) * int(wcs["NAXIS1"]), abs(float(wcs["CDELT2"])) * int(wcs["NAXIS2"]))
    return BeamGrid(float(wcs["CRVAL1"]), float(wcs["CRVAL2"]), margin * width_deg / (npix - 2), npix)


def beam_planes(freqs_hz: np.ndarray, planes: int = PLANES) -> np.ndarray:
    """Frequencies evenly spaced from the lowest channel to the highest (one for one channel)."""
    low, high = float(np.min(freqs_hz)), float(np.max(freqs_hz))
    return np.array([low]) if high == low else np.linspace(low, high, min(planes, len(freqs_hz)))


def katbeam_model(freqs_hz: np.ndarray, source: str) -> str:
    """The katbeam model whose band holds every frequency; a one-line error when none does."""
    low, high = float(np.min(freqs_hz)) / 1e6, float(np.max(freqs_hz)) / 1e6
    for name, (start, stop) in KATBEAM_MODELS.items():
        if start <= low and high <= stop:
            return name
    bands = ", ".join(f"{start:g}-{stop:g} MHz" for start, stop in KATBEAM_MODELS.values())
    raise fail(source, f"channels {low:.1f}-{high:.1f} MHz are not within one katbeam band ({bands}); "
                       "give the beam as FITS (catalogue.primary_beam: fits)")


def katbeam_stokes_i(grid: BeamGrid, freqs_hz: np.ndarray, source: str) -> np.ndarray:
    """MeerKAT's Stokes I response on ``grid`` at each frequency, (nfreq, npix, npix). katbeam's
    x and y are offsets in degrees along the antenna's horizontal and vertical; the I pattern is
    round to a few percent, so they are taken as east and north offsets on the sky."""
    from katbeam import JimBeam

    beam = JimBeam(katbeam_model(freqs_hz, source))
    l_rad, m_rad = grid.lm_rad()
    x_deg, y_deg = np.rad2deg(np.arcsin(l_rad)), np.rad2deg(np.arcsin(m_rad))
    return np.stack([np.asarray(beam.I(x_deg, y_deg, f / 1e6), dtype=np.float64) for f in freqs_hz])


def _import_everybeam():
    """EveryBeam, told where its pip wheel put the element-model files (the wheel's compiled-in
    path is that of the machine that built it)."""
    shipped = Path(sys.prefix) / "share" / "everybeam"
    if shipped.is_dir():
        os.environ.setdefault("EVERYBEAM_DATADIR", str(shipped))
    import everybeam

    return everybeam


def observation_times(ms_path: str, count: int = TIMES_PER_MS) -> np.ndarray:
    """``count`` times (MJD seconds, UTC) at the middles of equal parts of the observation's
    OBSERVATION::TIME_RANGE (a subtable: no column of the main table is read)."""
    from ..io.ms import open_table

    with open_table(ms_path, "OBSERVATION") as t:
        start, end = (float(v) for v in np.asarray(t.getcell("TIME_RANGE", 0), dtype=np.float64))
    return start + (end - start) * (np.arange(count) + 0.5) / count


def everybeam_stokes_i(ms_paths: list[str], grid: BeamGrid, freqs_hz: np.ndarray,
                       times_per_ms: int = TIMES_PER_MS) -> np.ndarray:
    """The Stokes I response of the array on ``grid`` (nfreq, npix, npix), averaged over every
    cross-correlation and ``times_per_ms`` times of each MS; not yet normalised."""
    everybeam = _import_everybeam()
    settings = everybeam.GridSettings()
    settings.ra, settings.dec = np.deg2rad(grid.ra_deg), np.deg2rad(grid.dec_deg)
    settings.width = settings.height = grid.npix
    settings.dl = settings.dm = np.deg2rad(grid.cell_deg)
    settings.l_shift = settings.m_shift = 0.0
    total = np.zeros((len(freqs_hz), grid.npix, grid.npix))
    for ms in ms_paths:
        try:
            telescope = everybeam.load_telescope(ms)
        except RuntimeError as err:
            raise fail(ms, f"EveryBeam cannot model its beam ({err})") from None
        nstation = telescope.nr_stations
        if nstation < 2:
            raise fail(ms, "EveryBeam finds fewer than two stations: no cross-correlation to average")
        for time in observation_times(ms, times_per_ms):
            for k, freq in enumerate(freqs_hz):
                jones = np.asarray(telescope.gridded_response(settings, float(time), float(freq)))
                summed = np.abs(jones.sum(axis=0)) ** 2
                own = (np.abs(jones) ** 2).sum(axis=0)
                total[k] += 0.5 * (summed - own).sum(axis=(-1, -2)) / (nstation * (nstation - 1))
    return total / (len(ms_paths) * times_per_ms)


def write_primary_beam(model: str, wcs: dict, freqs_hz: np.ndarray, ms_paths: list[str], out_path,
                       source: str = "cube") -> Path:
    """Evaluate ``model`` (everybeam or katbeam) over the field of ``wcs`` and write it to
    ``out_path`` as a FITS cube normalised to 1 at the phase centre in every plane."""
    from astropy.io import fits

    grid = beam_grid(wcs)
    planes = beam_planes(np.asarray(freqs_hz, dtype=np.float64))
    if model == "everybeam":
        response = everybeam_stokes_i(list(ms_paths), grid, planes)
        what = f"EveryBeam {software_versions(('everybeam',))['everybeam']}"
    elif model == "katbeam":
        response = katbeam_stokes_i(grid, planes, source)
        what = f"katbeam {software_versions(('katbeam',))['katbeam']} {katbeam_model(planes, source)}"
    else:
        raise ValueError(f"primary_beam: no telescope beam model {model!r} (everybeam or katbeam)")
    centre = response[:, grid.npix // 2, grid.npix // 2]
    if not np.all(np.isfinite(centre) & (centre > 0)):
        raise fail(source, f"{what}: no response at the phase centre; the beam is not pointed at this field")
    response = response / centre[:, None, None]
    header = fits.Header(grid.header(planes))
    header["BUNIT"] = ("", "Stokes I power response, 1 at the phase centre")
    header["BEAMMODL"] = (what, "primary beam model")
    header["TELESCOP"] = str(wcs.get("TELESCOP", ""))
    with atomic_path(out_path) as partial:  # never a complete-looking beam from a job that died
        fits.PrimaryHDU(response.astype(np.float32), header=header).writeto(partial)
    log.info("primary beam: %s on %d x %d points of %.3g deg, %d planes %.1f-%.1f MHz; response at the grid "
             "corners %.3g", what, grid.npix, grid.npix, grid.cell_deg, len(planes), planes[0] / 1e6,
             planes[-1] / 1e6, float(response[:, 0, 0].min()))
    return Path(out_path)


def primary_beam_of_cube(cube_store, model: str, ms_paths: list[str], out_path) -> Path:
    """write_primary_beam over the field and band of the cube in ``cube_store``."""
    cube = open_store(cube_store, "cube")
    ny, nx = cube[cube.attrs["image"]].shape[-2:]
    wcs = {"NAXIS1": nx, "NAXIS2": ny} | dict(cube.attrs["wcs"])
    if model == "everybeam" and not ms_paths:
        raise fail(cube_store, "catalogue.primary_beam everybeam needs the Measurement Sets the cube was imaged "
                               "from (their stations and pointing)")
    return write_primary_beam(model, wcs, np.asarray(cube["freq"][...]), ms_paths, out_path, source=str(cube_store))
