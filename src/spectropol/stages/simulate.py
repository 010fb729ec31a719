"""Simulated observations: a sky model of polarised point sources observed by an array, written
as a Measurement Set that WSClean and CASA read (all required subtables filled, per-channel tiles).

The sky model and array layout are small YAML files in resources/. Each source has Stokes I at a
reference frequency with a spectral index, a fractional linear polarisation rotated by its
rotation measure, Q + iU = p I exp(2i (chi0 + RM lambda^2)), and a fractional circular polarisation.

Also, at the end, an image-plane simulation (sky_cube): a cube store of polarised point sources
seen through each channel's restoring beam, with noise correlated over that beam as in a restored
image, for the checks of the Faraday and catalogue stages where imaging is not what is judged
(tests, benchmarks/detection.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import yaml

from ..constants import ARCSEC, SPEED_OF_LIGHT
from ..errors import fail
from ..io.cube import write_cube
from ..io.ms_writer import write_ms
from ..io.wcs import celestial_header, sin_offset
from ..kernels.faraday import lambda_squared
from ..kernels.parallactic import parallactic_angle
from ..kernels.photometry import beam_covariance_px, gaussian_shape
from ..kernels.primary_beam import airy_response
from ..kernels.stokes import correlations_from_stokes
from ..measurement import predict_visibilities
from ..options import SimulateOptions

log = logging.getLogger(__name__)

SIDEREAL_RATE = 1.002737909350795  # sidereal seconds per solar second
MJD_UNIX_EPOCH_S = 40587 * 86400.0  # casacore TIME is MJD in seconds


@dataclasses.dataclass(frozen=True)
class PointSource:
    name: str
    l: float  # direction cosine towards east
    m: float  # direction cosine towards north
    stokes_i_jy: float
    spectral_index: float
    pol_fraction: float
    rm_rad_m2: float
    pol_angle_deg: float
    v_fraction: float

    def stokes(self, freqs: np.ndarray, reference_hz: float) -> dict[str, np.ndarray]:
        """Stokes I, Q, U, V in Jy at each frequency (Hz)."""
        i = self.stokes_i_jy * (freqs / reference_hz) ** self.spectral_index
        lambda2 = (SPEED_OF_LIGHT / freqs) ** 2
        p = self.pol_fraction * i * np.exp(2j * (np.deg2rad(self.pol_angle_deg) + self.rm_rad_m2 * lambda2))
        return {"I": i, "Q": p.real, "U": p.imag, "V": self.v_fraction * i}


def _read_yaml(path: str | os.PathLike) -> dict:
    try:
        with open(path) as handle:
            document = yaml.safe_load(handle)
    except FileNotFoundError:
        raise fail(path, "file not found") from None
    except yaml.YAMLError as err:
        raise fail(path, f"not valid YAML ({err})") from None
    if not isinstance(document, dict):
        raise fail(path, "expected a mapping at the top level")
    return document


def load_sky_model(path: str | os.PathLike,
                   phase_centre_deg: tuple[float, float] | None = None) -> tuple[float, list[PointSource]]:
    """Reference frequency (Hz) and sources of a sky-model YAML file (see resources/skymodels/). A
    source is placed by offset_arcsec from the phase centre, or by radec_deg on the sky (a sky
    observed by several fields); the latter needs ``phase_centre_deg``."""
    document = _read_yaml(path)
    try:
        reference_hz = float(document["reference_frequency_hz"])
        sources = []
        for entry in document["sources"]:
            if "radec_deg" in entry:
                if phase_centre_deg is None:
                    raise fail(path, f"source {entry.get('name')}: radec_deg needs the phase centre of the observation")
                east, north = sin_offset(*(float(v) for v in entry["radec_deg"]), phase_centre_deg)
            else:
                east, north = (float(v) * ARCSEC for v in entry["offset_arcsec"])
            sources.append(
                PointSource(
                    name=str(entry["name"]), l=east, m=north,
                    stokes_i_jy=float(entry["stokes_i_jy"]),
                    spectral_index=float(entry.get("spectral_index", 0.0)),
                    pol_fraction=float(entry.get("pol_fraction", 0.0)),
                    rm_rad_m2=float(entry.get("rm_rad_m2", 0.0)),
                    pol_angle_deg=float(entry.get("pol_angle_deg", 0.0)),
                    v_fraction=float(entry.get("v_fraction", 0.0)),
                )
            )
    except (KeyError, TypeError, ValueError) as err:
        raise fail(path, f"sky model entry is incomplete or not numeric ({err!r})") from None
    if not sources:
        raise fail(path, "sky model has no sources")
    return reference_hz, sources


@dataclasses.dataclass(frozen=True)
class ArrayLayout:
    telescope: str
    longitude_deg: float
    latitude_deg: float
    height_m: float
    dish_diameter_m: float
    names: tuple[str, ...]
    enu_m: np.ndarray  # (nant, 3) east, north, up relative to the array centre


def load_layout(path: str | os.PathLike) -> ArrayLayout:
    """An array layout YAML file (see resources/layouts/)."""
    document = _read_yaml(path)
    try:
        stations = document["stations"]
        return ArrayLayout(
            telescope=str(document["telescope"]),
            longitude_deg=float(document["location"]["longitude_deg"]),
            latitude_deg=float(document["location"]["latitude_deg"]),
            height_m=float(document["location"]["height_m"]),
            dish_diameter_m=float(document["dish_diameter_m"]),
            names=tuple(str(name) for name in stations),
            enu_m=np.array([[float(v) for v in stations[name]] for name in stations]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise fail(path, f"array layout is incomplete or not numeric ({err!r})") from None


def itrf_positions(layout: ArrayLayout) -> np.ndarray:
    """ITRF (geocentric) antenna positions in metres from east-north-up offsets."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    centre = EarthLocation.from_geodetic(layout.longitude_deg * u.deg, layout.latitude_deg * u.deg,
                                         layout.height_m * u.m)
    lon, lat = np.deg2rad(layout.longitude_deg), np.deg2rad(layout.latitude_deg)
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    origin = np.array([centre.x.to_value(u.m), centre.y.to_value(u.m), centre.z.to_value(u.m)])
    return origin + layout.enu_m @ np.vstack([east, north, up])


def antenna_uvw(enu_m: np.ndarray, latitude_rad: float, hour_angle_rad: np.ndarray, dec_rad: float) -> np.ndarray:
    """(ntime, nant, 3) u, v, w in metres of each antenna for hour angles H (Thompson, Moran &
    Swenson 2017, eq. 4.1), with the local equatorial frame X to (H=0, dec=0), Y east, Z north pole."""
    e, n, up = enu_m.T
    x = -np.sin(latitude_rad) * n + np.cos(latitude_rad) * up
    y = e
    z = np.cos(latitude_rad) * n + np.sin(latitude_rad) * up
    h = np.asarray(hour_angle_rad)[:, None]
    sd, cd = np.sin(dec_rad), np.cos(dec_rad)
    u = np.sin(h) * x + np.cos(h) * y
    v = -sd * np.cos(h) * x + sd * np.sin(h) * y + cd * z
    w = cd * np.cos(h) * x - cd * np.sin(h) * y + sd * z
    return np.stack([u, v, w], axis=-1)


def _transit_time_mjd_s(ra_rad: float, longitude_deg: float, epoch: str) -> float:
    """MJD seconds of the first transit of right ascension ra_rad after the epoch (UTC)."""
    from astropy import units as u
    from astropy.time import Time

    start = Time(epoch, scale="utc")
    lst = start.sidereal_time("mean", longitude=longitude_deg * u.deg).to_value(u.rad)
    wait_sidereal = (ra_rad - lst) % (2 * np.pi)
    wait_s = wait_sidereal / (2 * np.pi) * 86400.0 / SIDEREAL_RATE
    return float(start.mjd * 86400.0 + wait_s)


def simulate_ms(
    ms_path: str | os.PathLike,
    skymodel: str | os.PathLike,
    layout: str | os.PathLike,
    *,
    ra_deg: float,
    dec_deg: float,
    start_freq_hz: float,
    chan_width_hz: float,
    nchan: int,
    ntimes: int,
    integration_s: float,
    hour_angle_span_h: float,
    noise_jy: float,
    feeds: str = "linear",
    seed: int = 1,
    epoch: str = "2026-01-01T00:00:00",
    correlations: tuple[str, ...] | None = None,
    parallactic_rotation: bool = False,
) -> dict:
    """Write a Measurement Set observing ``skymodel`` with ``layout``; return a summary of the truth.

    Visibilities are the exact direct Fourier sum (w-term included) plus complex Gaussian noise of
    standard deviation ``noise_jy`` on the real and imaginary part of each correlation; WEIGHT is
    1/noise_jy^2 and SIGMA noise_jy. The MS is written to a temporary name and renamed at the end.
    A negative ``chan_width_hz`` writes decreasing frequencies. With ``parallactic_rotation`` the
    feeds are on alt-az mounts and turn with the parallactic angle, so that the polarisation they
    see is rotated (kernels/parallactic.py); otherwise they stay fixed on the sky.
    """
    reference_hz, sources = load_sky_model(skymodel, (ra_deg, dec_deg))
    array = load_layout(layout)
    corr_names = ("XX", "XY", "YX", "YY") if feeds == "linear" else ("RR", "RL", "LR", "LL")
    if correlations is not None:  # another order, or a subset such as XX, YY
        if not set(correlations) <= set(corr_names):
            raise ValueError(f"correlations {correlations} are not all {feeds}")
        corr_names = tuple(correlations)
    freqs = start_freq_hz + chan_width_hz * np.arange(nchan)
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)

    transit = _transit_time_mjd_s(ra, array.longitude_deg, epoch)
    offsets = (np.arange(ntimes) - (ntimes - 1) / 2) * (hour_angle_span_h * 3600.0 / max(ntimes - 1, 1))
    times = transit + offsets
    hour_angle = offsets * SIDEREAL_RATE * 2 * np.pi / 86400.0
    per_antenna = antenna_uvw(array.enu_m, np.deg2rad(array.latitude_deg), hour_angle, dec)

    nant = len(array.names)
    ant1, ant2 = np.triu_indices(nant, k=1)
    nbl = len(ant1)
    # MS convention: UVW = antenna1 - antenna2 (see measurement.py).
    uvw = (per_antenna[:, ant1] - per_antenna[:, ant2]).reshape(-1, 3)
    time_col = np.repeat(times, nbl)
    a1, a2 = np.tile(ant1, ntimes), np.tile(ant2, ntimes)

    l = np.array([s.l for s in sources])
    m = np.array([s.m for s in sources])
    stokes = [s.stokes(freqs, reference_hz) for s in sources]
    if parallactic_rotation:
        # (Q + iU) seen by the feeds = (Q + iU) exp(-2i q): the part of the correlations from I and V,
        # and the parts from (Q, U) and (U, -Q), weighted by cos 2q and sin 2q of each row's time.
        fixed = [{k: s[k] for k in ("I", "V")} for s in stokes]
        along = [{"Q": s["Q"], "U": s["U"]} for s in stokes]
        across = [{"Q": s["U"], "U": -s["Q"]} for s in stokes]
        q = np.repeat(parallactic_angle(hour_angle, dec, np.deg2rad(array.latitude_deg)), nbl)
        data = 0
        for part, factor in ((fixed, np.ones_like(q)), (along, np.cos(2 * q)), (across, np.sin(2 * q))):
            flux = np.stack([correlations_from_stokes(p, corr_names) for p in part])
            data = data + predict_visibilities(uvw, freqs, l, m, flux) * factor[:, None, None]
    else:
        flux = np.stack([correlations_from_stokes(s, corr_names) for s in stokes])  # (nsrc, nchan, ncorr)
        data = predict_visibilities(uvw, freqs, l, m, flux)
    rng = np.random.default_rng(seed)
    data += noise_jy * (rng.standard_normal(data.shape) + 1j * rng.standard_normal(data.shape))

    ms_path = Path(ms_path)
    partial = ms_path.with_name(ms_path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    write_ms(
        partial, data=data.astype(np.complex64), uvw=uvw, time=time_col, ant1=a1, ant2=a2,
        integration_s=integration_s, freqs=freqs, chan_width_hz=chan_width_hz, corr_names=corr_names,
        ra=ra, dec=dec, antenna_names=array.names, antenna_itrf_m=itrf_positions(array),
        dish_diameter_m=array.dish_diameter_m, telescope=array.telescope, noise_jy=noise_jy,
        mount="alt-az" if parallactic_rotation else "X-Y",
    )
    shutil.rmtree(ms_path, ignore_errors=True)
    os.replace(partial, ms_path)
    log.info("wrote %s: %d rows x %d channels x %d correlations (%s feeds)", ms_path, len(uvw), nchan, len(corr_names),
             feeds)
    return {
        "ms": str(ms_path),
        "rows": int(len(uvw)),
        "channels": int(nchan),
        "feeds": feeds,
        "sources": [dataclasses.asdict(s) for s in sources],
        "reference_frequency_hz": reference_hz,
    }



def simulate(ms_path: str | os.PathLike, skymodel: str | os.PathLike, layout: str | os.PathLike,
             options: SimulateOptions = SimulateOptions()) -> dict:
    """The simulate stage: the demo observation of ``skymodel`` by ``layout`` as ``options`` describe it."""
    return simulate_ms(ms_path, skymodel, layout, **dataclasses.asdict(options))


# Image-plane simulation

IMAGE_REFERENCE_HZ = 144e6  # where an ImageSource's Stokes I is given


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """A point source at pixel (x, y) with Stokes I ``flux`` (Jy at IMAGE_REFERENCE_HZ) and spectral
    index ``alpha``, and Faraday-thin components (fractional polarisation, RM rad/m^2, intrinsic
    angle deg): one for a simple source, two for a Faraday-complex one."""

    x: float
    y: float
    flux: float
    alpha: float
    components: tuple[tuple[float, float, float], ...]
    v_fraction: float = 0.0  # Stokes V / I, flat in frequency (a leak of I into V, or circular polarisation)


def correlated_noise(rng: np.random.Generator, shape: tuple[int, ...], beam_px: np.ndarray,
                     sigma: float = 1.0) -> np.ndarray:
    """Gaussian noise of rms ``sigma`` per pixel, correlated like a restored image's (white noise
    convolved with a Gaussian of half the beam's covariance: its autocorrelation is the beam)."""
    from scipy.signal import fftconvolve

    ny, nx = shape[-2:]
    yy, xx = np.mgrid[0:ny, 0:nx]
    kernel = gaussian_shape(beam_px / 2.0, xx - nx // 2, yy - ny // 2)
    white = rng.standard_normal(shape)
    smooth = fftconvolve(white, kernel.reshape((1,) * (white.ndim - 2) + kernel.shape), mode="same", axes=(-2, -1))
    return sigma * smooth / np.sqrt((kernel**2).sum())  # rms sigma away from the edges


def sky_cube(path: str | os.PathLike, sources: list[ImageSource], rng: np.random.Generator, *, npix: int = 128,
             freqs_hz: np.ndarray | None = None, sigma: float = 2e-3, cell_arcsec: float = 5.0,
             beam_px_top: float = 3.0, dish_diameter_m: float | None = None) -> np.ndarray:
    """Write an IQUV cube store of ``sources`` on noise of ``sigma`` per channel and Stokes (0.12-0.168
    GHz in 48 channels unless ``freqs_hz``): beams of beam_px_top x 0.87 beam_px_top pixels (PA 25
    deg) at the top of the band, growing as 1/nu, as a survey images at 3 pixels per beam. With
    ``dish_diameter_m`` the sources are seen through the Airy primary beam of such dishes pointed at
    the image centre (and the header's DISHDIAM says so). Returns the data (nfreq, 4, npix, npix)."""
    freqs = np.linspace(120e6, 168e6, 48) if freqs_hz is None else np.asarray(freqs_hz, dtype=np.float64)
    nfreq, cell_deg = len(freqs), cell_arcsec / 3600
    l2 = lambda_squared(freqs)
    scale = freqs.max() / freqs
    beams = np.column_stack([beam_px_top * cell_deg * scale, 0.87 * beam_px_top * cell_deg * scale,
                             np.full(nfreq, 25.0)])
    data = np.zeros((nfreq, 4, npix, npix), np.float32)
    yy, xx = np.mgrid[0:npix, 0:npix]
    # each source's angle from the pointing: the SIN projection's pixels are direction cosines
    sin_offset = np.deg2rad(cell_deg) * np.hypot([s.x - npix // 2 for s in sources], [s.y - npix // 2 for s in sources])
    response = (airy_response(np.arcsin(sin_offset), freqs, dish_diameter_m) if dish_diameter_m
                else np.ones((nfreq, len(sources))))
    # Stokes V's noise from a stream of its own: I, Q and U are those of the same seed without it
    v_rng = rng.spawn(1)[0]
    for c in range(nfreq):
        beam = beam_covariance_px(*beams[c], cell_deg)
        data[c, :3] = correlated_noise(rng, (3, npix, npix), beam, sigma)
        data[c, 3] = correlated_noise(v_rng, (npix, npix), beam, sigma)
        for n, source in enumerate(sources):
            shape = gaussian_shape(beam, xx - source.x, yy - source.y)
            stokes_i = response[c, n] * source.flux * (freqs[c] / IMAGE_REFERENCE_HZ) ** source.alpha
            pol = sum(p * np.exp(2j * (np.deg2rad(chi0) + rm * l2[c])) for p, rm, chi0 in source.components)
            data[c, 0] += stokes_i * shape
            data[c, 1] += stokes_i * np.real(pol) * shape
            data[c, 2] += stokes_i * np.imag(pol) * shape
            data[c, 3] += stokes_i * source.v_fraction * shape
    wcs = celestial_header(np.deg2rad(150.0), np.deg2rad(40.0), npix, npix, np.deg2rad(cell_deg))
    if dish_diameter_m:
        wcs["DISHDIAM"] = float(dish_diameter_m)
    write_cube(path, data, freqs, wcs, rms=np.full((nfreq, 4), sigma, np.float32), beams=beams, chunk=64)
    return data
