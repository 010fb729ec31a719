"""The split stage: channels of the MS as Stokes I, Q, U, V visibilities in Zarr stores, one per
channel, written by one job per block of channels."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import SPEED_OF_LIGHT, STOKES
from ..errors import fail
from ..io.channels import channel_name
from ..io.ionosphere import read_ionosphere_rm
from ..io.ms import Selection, read_channel
from ..io.stores import provenance, write_store
from ..kernels.stokes import rotate_linear_polarisation, stokes_from_correlations
from ..qa.documents import write_qa
from .inspect import read_inspection

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SplitResult:
    """The split stage's QA figures of one channel."""

    channel: int
    freq_hz: float
    rows_read: int
    rows_kept: int
    visibilities_usable: dict[str, int]
    flagged_fraction: float
    nonfinite_visibilities: int
    negative_weights: int
    stokes_present: list[str]
    ionosphere: dict | None


def split_channel(selection: Selection, channel: int, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                  ionosphere_rm: str | os.PathLike | None = None, *, rule: str = "spectropol") -> SplitResult:
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
    stokes_vis, stokes_weight, labels = stokes_from_correlations(data.vis, data.flags, data.weights,
                                                                 selection.corr_names)
    ionosphere = None
    if ionosphere_rm is not None and {"Q", "U"} <= set(labels):
        times, rms = read_ionosphere_rm(ionosphere_rm)
        if data.time.min() < times[0] or data.time.max() > times[-1]:
            raise fail(ionosphere_rm, f"covers MJD seconds {times[0]:.1f}..{times[-1]:.1f} but {selection.ms} has "
                                      f"{data.time.min():.1f}..{data.time.max():.1f}")
        rm = np.interp(data.time, times, rms)
        iq, iu = labels.index("Q"), labels.index("U")
        angle = rm * (SPEED_OF_LIGHT / data.freq) ** 2
        stokes_vis[:, iq], stokes_vis[:, iu] = rotate_linear_polarisation(stokes_vis[:, iq], stokes_vis[:, iu], angle)
        ionosphere = {"table": str(ionosphere_rm), "rm_mean": float(rm.mean()), "rm_min": float(rm.min()),
                      "rm_max": float(rm.max())}
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
        "weight": (("row", "stokes"), weight, {"units": "Jy-2",
                                               "description": "inverse variance; 0 = flagged or absent"}),
        "uvw": (("row", "uvw_axis"), data.uvw[keep], {"units": "m",
                                                      "description": "MS convention, antenna1 - antenna2"}),
        "stokes": (("stokes",), np.array(STOKES), {}),
        "uvw_axis": (("uvw_axis",), np.array(["u", "v", "w"]), {}),
    }, attrs)
    stats = SplitResult(
        channel=int(channel), freq_hz=data.freq, rows_read=int(data.vis.shape[0]), rows_kept=int(keep.sum()),
        visibilities_usable=usable, flagged_fraction=flagged_fraction, nonfinite_visibilities=nonfinite,
        negative_weights=negative_weights, stokes_present=list(labels), ionosphere=ionosphere,
    )
    write_qa(qa_path, "split", stats, rule)
    if keep.sum() == 0:
        log.warning("channel %d of %s has no usable visibilities; its images will be NaN", channel, selection.ms)
    log.info("channel %d (%.6f MHz): %d of %d rows kept", channel, data.freq / 1e6, keep.sum(), data.vis.shape[0])
    return stats


def split_block(inspection: str | os.PathLike, ms: str, channels: Sequence[int], vis_dir: str | os.PathLike,
                qa_dir: str | os.PathLike, *, width: int, ionosphere_rm: str | os.PathLike | None = None,
                rule: str = "spectropol") -> list[SplitResult]:
    """Split each of ``channels`` of ``ms`` (as inspect_ms selected its data) into
    ``vis_dir/NNNNN.zarr`` with its QA document in ``qa_dir/NNNNN.json``."""
    selection, _ = read_inspection(inspection)
    # The MS is named as it is now: a re-delivered copy has the content the fingerprints describe.
    selection = dataclasses.replace(selection, ms=str(ms))
    vis_dir, qa_dir = Path(vis_dir), Path(qa_dir)
    vis_dir.mkdir(parents=True, exist_ok=True)
    qa_dir.mkdir(parents=True, exist_ok=True)
    return [split_channel(selection, channel, vis_dir / f"{channel_name(channel, width)}.zarr",
                          qa_dir / f"{channel_name(channel, width)}.json", ionosphere_rm, rule=rule)
            for channel in channels]
