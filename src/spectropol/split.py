"""The split stage: one channel of the MS as Stokes I, Q, U, V visibilities in a Zarr store."""

from __future__ import annotations

import logging
import os

import numpy as np

from .errors import fail
from .ms import Selection, read_channel
from .products import provenance, read_store, write_qa, write_store
from .measurement import SPEED_OF_LIGHT
from .stokes import STOKES, rotate_linear_polarisation, stokes_from_correlations

log = logging.getLogger(__name__)


def load_ionosphere_rm(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A table of ionospheric rotation measure against time: CSV with a header line and columns
    time (MJD seconds, as the MS TIME column) and RM (rad/m^2), times increasing."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except OSError:
        raise fail(path, "ionospheric RM table not found") from None
    except ValueError as err:
        raise fail(path, f"ionospheric RM table is not two numeric CSV columns time_mjd_s,rm_rad_m2 ({err})") from None
    if table.shape[1] != 2 or len(table) == 0 or not np.all(np.isfinite(table)) or np.any(np.diff(table[:, 0]) <= 0):
        raise fail(path, "ionospheric RM table needs rows of time_mjd_s,rm_rad_m2 with increasing, finite times")
    return table[:, 0], table[:, 1]


def split_channel(selection: Selection, channel: int, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                  ionosphere_rm: str | os.PathLike | None = None) -> dict:
    """Read ``channel``, form Stokes visibilities and their inverse-variance weights, keep rows with
    any usable Stokes value, and write them with UVW to ``out_store``. Returns the QA statistics.

    ``ionosphere_rm``: a table of ionospheric RM against time (load_ionosphere_rm); Q and U of each
    visibility are derotated by RM_ion(t) lambda^2, so that Faraday depths are those of the sky.

    A channel with nothing usable is not an error: it is written with zero rows and said so in QA,
    and becomes a NaN plane in the cube.
    """
    data = read_channel(selection, channel)
    nonfinite = int((~np.isfinite(data.vis)).sum())
    negative_weights = int((data.weights < 0).sum())
    stokes_vis, stokes_weight, labels = stokes_from_correlations(data.vis, data.flags, data.weights, selection.corr_names)
    ionosphere = None
    if ionosphere_rm is not None and {"Q", "U"} <= set(labels):
        times, rms = load_ionosphere_rm(ionosphere_rm)
        if data.time.min() < times[0] or data.time.max() > times[-1]:
            raise fail(ionosphere_rm, f"covers MJD seconds {times[0]:.1f}..{times[-1]:.1f} but {selection.ms} has "
                                      f"{data.time.min():.1f}..{data.time.max():.1f}")
        rm = np.interp(data.time, times, rms)
        iq, iu = labels.index("Q"), labels.index("U")
        angle = rm * (SPEED_OF_LIGHT / data.freq) ** 2
        stokes_vis[:, iq], stokes_vis[:, iu] = rotate_linear_polarisation(stokes_vis[:, iq], stokes_vis[:, iu], angle)
        ionosphere = {"table": str(ionosphere_rm), "rm_mean": float(rm.mean()), "rm_min": float(rm.min()), "rm_max": float(rm.max())}
    keep = (stokes_weight > 0).any(axis=1)
    # Always store all four Stokes so that later stages see one layout; absent ones have weight 0.
    vis = np.zeros((int(keep.sum()), len(STOKES)), dtype=np.complex64)
    weight = np.zeros(vis.shape, dtype=np.float32)
    for k, label in enumerate(labels):
        vis[:, STOKES.index(label)] = stokes_vis[keep, k]
        weight[:, STOKES.index(label)] = stokes_weight[keep, k]

    usable = {s: int((weight[:, k] > 0).sum()) for k, s in enumerate(STOKES)}
    flagged_fraction = float(1.0 - (stokes_weight > 0).mean()) if stokes_weight.size else 1.0
    attrs = {
        "channel": int(channel),
        "freq_hz": data.freq,
        "stokes_present": list(labels),
        "selection": selection.to_dict() | {"freqs_hz": None},
        "provenance": provenance({"ms": selection.ms, "column": selection.column}),
    }
    write_store(out_store, {
        "vis": (("row", "stokes"), vis, {"units": "Jy", "description": "Stokes visibilities"}),
        "weight": (("row", "stokes"), weight, {"units": "Jy-2", "description": "inverse variance; 0 = flagged or absent"}),
        "uvw": (("row", "uvw_axis"), data.uvw[keep], {"units": "m", "description": "MS convention, antenna1 - antenna2"}),
        "stokes": (("stokes",), np.array(STOKES), {}),
        "uvw_axis": (("uvw_axis",), np.array(["u", "v", "w"]), {}),
    }, attrs)
    stats = {
        "channel": int(channel),
        "freq_hz": data.freq,
        "rows_read": int(data.vis.shape[0]),
        "rows_kept": int(keep.sum()),
        "visibilities_usable": usable,
        "flagged_fraction": flagged_fraction,
        "nonfinite_visibilities": nonfinite,
        "negative_weights": negative_weights,
        "stokes_present": list(labels),
        "ionosphere": ionosphere,
    }
    write_qa(qa_path, "split", stats, rule="split_channel")
    if keep.sum() == 0:
        log.warning("channel %d of %s has no usable visibilities; its images will be NaN", channel, selection.ms)
    log.info("channel %d (%.6f MHz): %d of %d rows kept", channel, data.freq / 1e6, keep.sum(), data.vis.shape[0])
    return stats


def load_channel_vis(store: str | os.PathLike) -> tuple[dict, dict]:
    """The arrays (vis, weight, uvw) and attributes of a split store, with a one-line error if it is not one."""
    try:
        return read_store(store, ("vis", "weight", "uvw"))
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(store, f"not a spectropol channel visibility store ({err})") from None


def plan_split(ms: str, plan_path: str | os.PathLike, *, column: str, spw: int | None, field: int | None,
               size: int, cell_arcsec: float | None, pixels_per_beam: float) -> dict:
    """Check the MS once and record what every channel job needs: the data selection and the image
    geometry shared by all channels (so an automatic cell is the same across the band)."""
    from .imaging import image_geometry
    from .ms import inspect_ms
    from .products import write_json
    from .wcs import celestial_header, observation_keywords

    selection = inspect_ms(ms, column=column, spw=spw, field=field)
    geometry = image_geometry(selection, size, cell_arcsec, pixels_per_beam)
    ra, dec = selection.phase_centre_rad
    # The header every channel image carries, made once (astropy.time is slow to import).
    geometry["wcs"] = celestial_header(ra, dec, geometry["npix"], geometry["npix"], geometry["cell_rad"]) | \
        observation_keywords(selection.time_range_mjd_s[0], selection.telescope)
    plan = {"selection": selection.to_dict(), "geometry": geometry}
    write_json(plan_path, plan)
    log.info("%s: %d rows, %d channels, %s feeds %s, cell %.2f arcsec", ms, selection.nrows, len(selection.freqs),
             plan["selection"]["feed_basis"], list(selection.corr_names), plan["geometry"]["cell_arcsec"])
    return plan


def load_plan(plan_path: str | os.PathLike) -> tuple[Selection, dict]:
    """The Selection and image geometry written by plan_split."""
    import json

    with open(plan_path) as handle:
        plan = json.load(handle)
    return Selection.from_dict(plan["selection"]), plan["geometry"]
