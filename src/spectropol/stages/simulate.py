"""Simulated observations: a sky model of polarised point sources observed by an array, written
as a Measurement Set that WSClean and CASA read (all required subtables filled, per-channel tiles).

The sky model and array layout are small YAML files in resources/. Each source has Stokes I at a
reference frequency with a spectral index, a fractional linear polarisation rotated by its
rotation measure, Q + iU = p I exp(2i (chi0 + RM lambda^2)), and a fractional circular polarisation.
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
from ..kernels.stokes import CORR_NUMBERS, correlations_from_stokes
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


def load_sky_model(path: str | os.PathLike) -> tuple[float, list[PointSource]]:
    """Reference frequency (Hz) and sources of a sky-model YAML file (see resources/skymodels/)."""
    document = _read_yaml(path)
    try:
        reference_hz = float(document["reference_frequency_hz"])
        sources = []
        for entry in document["sources"]:
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
) -> dict:
    """Write a Measurement Set observing ``skymodel`` with ``layout``; return a summary of the truth.

    Visibilities are the exact direct Fourier sum (w-term included) plus complex Gaussian noise of
    standard deviation ``noise_jy`` on the real and imaginary part of each correlation; WEIGHT is
    1/noise_jy^2 and SIGMA noise_jy. The MS is written to a temporary name and renamed at the end.
    """
    reference_hz, sources = load_sky_model(skymodel)
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
    flux = np.stack([correlations_from_stokes(s, corr_names) for s in stokes])  # (nsrc, nchan, ncorr)
    data = predict_visibilities(uvw, freqs, l, m, flux)
    rng = np.random.default_rng(seed)
    data += noise_jy * (rng.standard_normal(data.shape) + 1j * rng.standard_normal(data.shape))

    ms_path = Path(ms_path)
    partial = ms_path.with_name(ms_path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _write_ms(
        partial, data=data.astype(np.complex64), uvw=uvw, time=time_col, ant1=a1, ant2=a2,
        integration_s=integration_s, freqs=freqs, chan_width_hz=chan_width_hz, corr_names=corr_names,
        ra=ra, dec=dec, array=array, noise_jy=noise_jy,
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


def _write_ms(path, *, data, uvw, time, ant1, ant2, integration_s, freqs, chan_width_hz, corr_names, ra, dec, array,
              noise_jy):
    from casacore.tables import default_ms, makearrcoldesc, maketabdesc, table

    nrow, nchan, ncorr = data.shape
    # One channel per tile: reading one channel touches only its tiles (about 40x faster than
    # channel-contiguous tiles, per ../shared/DESIGN.md), full reads barely slower.
    rows_per_tile = max(1, min(nrow, 65536 // ncorr))
    tile = {"DEFAULTTILESHAPE": np.array([ncorr, 1, rows_per_tile], dtype=np.int32)}
    desc = maketabdesc([
        makearrcoldesc("DATA", 0j, shape=[nchan, ncorr], valuetype="complex", datamanagertype="TiledColumnStMan",
                       datamanagergroup="TiledData"),
        makearrcoldesc("FLAG", False, shape=[nchan, ncorr], valuetype="boolean", datamanagertype="TiledColumnStMan",
                       datamanagergroup="TiledFlag"),
        makearrcoldesc("WEIGHT", 1.0, shape=[ncorr], valuetype="float"),
        makearrcoldesc("SIGMA", 1.0, shape=[ncorr], valuetype="float"),
    ])
    dminfo = {
        "*1": {"TYPE": "TiledColumnStMan", "NAME": "TiledData", "SPEC": tile, "COLUMNS": ["DATA"]},
        "*2": {"TYPE": "TiledColumnStMan", "NAME": "TiledFlag", "SPEC": tile, "COLUMNS": ["FLAG"]},
    }
    ms = default_ms(str(path), desc, dminfo)
    ms.addrows(nrow)
    ms.putcol("DATA", data)
    ms.putcol("FLAG", np.zeros(data.shape, dtype=bool))
    ms.putcol("WEIGHT", np.full((nrow, ncorr), 1.0 / noise_jy**2, dtype=np.float32))
    ms.putcol("SIGMA", np.full((nrow, ncorr), noise_jy, dtype=np.float32))
    ms.putcol("UVW", uvw)
    ms.putcol("TIME", time)
    ms.putcol("TIME_CENTROID", time)
    ms.putcol("INTERVAL", np.full(nrow, integration_s))
    ms.putcol("EXPOSURE", np.full(nrow, integration_s))
    ms.putcol("ANTENNA1", ant1.astype(np.int32))
    ms.putcol("ANTENNA2", ant2.astype(np.int32))
    for name in ("DATA_DESC_ID", "FIELD_ID", "SCAN_NUMBER", "ARRAY_ID", "OBSERVATION_ID", "PROCESSOR_ID", "STATE_ID"):
        ms.putcol(name, np.zeros(nrow, dtype=np.int32) if name != "SCAN_NUMBER" else np.ones(nrow, dtype=np.int32))
    ms.putcol("FLAG_ROW", np.zeros(nrow, dtype=bool))
    # default_ms labels UVW as ITRF; they are J2000 (../shared/DESIGN.md).
    measinfo = ms.getcolkeyword("UVW", "MEASINFO")
    measinfo["Ref"] = "J2000"
    ms.putcolkeyword("UVW", "MEASINFO", measinfo)
    ms.close()

    nant = len(array.names)
    with table(f"{path}::ANTENNA", readonly=False, ack=False) as t:
        t.addrows(nant)
        t.putcol("NAME", list(array.names))
        t.putcol("STATION", list(array.names))
        t.putcol("TYPE", ["GROUND-BASED"] * nant)
        t.putcol("MOUNT", ["X-Y"] * nant)
        t.putcol("POSITION", itrf_positions(array))
        t.putcol("OFFSET", np.zeros((nant, 3)))
        t.putcol("DISH_DIAMETER", np.full(nant, array.dish_diameter_m))
        t.putcol("FLAG_ROW", np.zeros(nant, dtype=bool))

    receptors = ["X", "Y"] if corr_names[0][0] in "XY" else ["R", "L"]
    with table(f"{path}::FEED", readonly=False, ack=False) as t:
        t.addrows(nant)
        t.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nant, dtype=np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("TIME", np.full(nant, time[0]))
        t.putcol("INTERVAL", np.full(nant, time[-1] - time[0] + integration_s))
        t.putcol("NUM_RECEPTORS", np.full(nant, 2, dtype=np.int32))
        t.putcol("BEAM_ID", np.full(nant, -1, dtype=np.int32))
        t.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
        t.putcol("POLARIZATION_TYPE", np.array([receptors] * nant))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)))
        t.putcol("POSITION", np.zeros((nant, 3)))
        t.putcol("RECEPTOR_ANGLE", np.tile([0.0, np.pi / 2], (nant, 1)))

    with table(f"{path}::FIELD", readonly=False, ack=False) as t:
        t.addrows(1)
        direction = np.array([[[ra, dec]]])
        for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
            t.putcol(column, direction)
        t.putcol("NAME", ["DEMO"])
        t.putcol("CODE", [""])
        t.putcol("TIME", np.array([time[0]]))
        t.putcol("NUM_POLY", np.zeros(1, dtype=np.int32))
        t.putcol("SOURCE_ID", np.full(1, -1, dtype=np.int32))

    with table(f"{path}::SPECTRAL_WINDOW", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("CHAN_FREQ", freqs[None, :])
        for column in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            t.putcol(column, np.full((1, nchan), chan_width_hz))
        t.putcol("NUM_CHAN", np.array([nchan], dtype=np.int32))
        t.putcol("REF_FREQUENCY", np.array([freqs[nchan // 2]]))
        t.putcol("TOTAL_BANDWIDTH", np.array([nchan * chan_width_hz]))
        t.putcol("MEAS_FREQ_REF", np.array([5], dtype=np.int32))  # TOPO
        t.putcol("NAME", ["SPW0"])
        t.putcol("NET_SIDEBAND", np.ones(1, dtype=np.int32))
        t.putcol("FREQ_GROUP_NAME", [""])

    with table(f"{path}::POLARIZATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("NUM_CORR", np.array([ncorr], dtype=np.int32))
        t.putcol("CORR_TYPE", np.array([[CORR_NUMBERS[c] for c in corr_names]], dtype=np.int32))
        receptor = {"X": 0, "Y": 1, "R": 0, "L": 1}
        t.putcol("CORR_PRODUCT", np.array([[[receptor[c[0]], receptor[c[1]]] for c in corr_names]], dtype=np.int32))

    with table(f"{path}::DATA_DESCRIPTION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("SPECTRAL_WINDOW_ID", np.zeros(1, dtype=np.int32))
        t.putcol("POLARIZATION_ID", np.zeros(1, dtype=np.int32))

    with table(f"{path}::OBSERVATION", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("TELESCOPE_NAME", [array.telescope])
        t.putcol("OBSERVER", ["spectropol simulate"])
        t.putcol("PROJECT", ["spectropol demo"])
        t.putcol("TIME_RANGE", np.array([[time[0], time[-1] + integration_s]]))
        t.putcol("RELEASE_DATE", np.array([time[0]]))
        t.putcol("SCHEDULE_TYPE", [""])

    with table(f"{path}::PROCESSOR", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcol("TYPE", ["CORRELATOR"])
        t.putcol("SUB_TYPE", ["SIMULATOR"])
        t.putcol("TYPE_ID", np.zeros(1, dtype=np.int32))
        t.putcol("MODE_ID", np.zeros(1, dtype=np.int32))


def simulate(ms_path: str | os.PathLike, skymodel: str | os.PathLike, layout: str | os.PathLike,
             options: SimulateOptions = SimulateOptions()) -> dict:
    """The simulate stage: the demo observation of ``skymodel`` by ``layout`` as ``options`` describe it."""
    return simulate_ms(ms_path, skymodel, layout, **dataclasses.asdict(options))
