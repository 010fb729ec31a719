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
from ..io.ms import FeedGeometry, RowData, Selection, read_channel, read_feed_geometry, read_rows
from ..io.stores import content_digest, provenance, write_store
from ..kernels.parallactic import feed_angles
from ..kernels.stokes import rotate_linear_polarisation, stokes_from_correlations
from ..options import SplitOptions
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
                  ionosphere_rm: str | os.PathLike | None = None, *, output_channel: int | None = None,
                  feeds: FeedGeometry | None = None, rows: RowData | None = None,
                  rule: str = "spectropol") -> SplitResult:
    """Read ``channel`` of the selected spectral window, form Stokes visibilities and their
    inverse-variance weights, keep rows with any usable Stokes value, and write them with UVW to
    ``out_store`` as ``output_channel`` of the joined channel axis (default ``channel``), with the
    channel's identity (MS, spw, channel there). Returns the QA statistics.

    ``ionosphere_rm``: a table of ionospheric RM against time (read_ionosphere_rm); Q and U of each
    visibility are derotated by RM_ion(t) lambda^2, so that Faraday depths are those of the sky.
    ``feeds``: the antennas' feed geometry; Q and U of each visibility are rotated back by the
    angle its two feeds had on the sky (parallactic plus receptor angle, their mean), for alt-az
    mounts whose feeds turn with the sky.

    A channel with nothing usable is not an error: it is written with zero rows and said so in QA,
    and becomes a NaN plane in the cube.
    """
    data = read_channel(selection, channel, rows)
    nonfinite = int((~np.isfinite(data.vis)).sum())
    negative_weights = int((data.weights < 0).sum())
    stokes_vis, stokes_weight, labels = stokes_from_correlations(data.vis, data.flags, data.weights,
                                                                 selection.corr_names)
    output_channel = channel if output_channel is None else int(output_channel)
    if feeds is not None and {"Q", "U"} <= set(labels):
        iq, iu = labels.index("Q"), labels.index("U")
        angle = _feed_angle_per_row(data, selection, feeds)
        stokes_vis[:, iq], stokes_vis[:, iu] = rotate_linear_polarisation(stokes_vis[:, iq], stokes_vis[:, iu], -angle)
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
        "channel": output_channel,
        "source": {"ms": selection.ms, "spw": selection.spw, "channel": int(channel)},
        "freq_hz": data.freq,
        "stokes_present": list(labels),
        "selection": selection.to_dict() | {"freqs_hz": None},
    }
    uvw = data.uvw[keep]
    # What the channel's images depend on, so that the image stage can keep the images of a channel
    # whose visibilities came out the same when its block was split again.
    attrs["content_digest"] = content_digest({"vis": vis, "weight": weight, "uvw": uvw},
                                             {k: attrs[k] for k in ("channel", "freq_hz", "stokes_present")})
    attrs["provenance"] = provenance({"ms": selection.ms, "column": selection.column})
    write_store(out_store, {
        "vis": (("row", "stokes"), vis, {"units": "Jy", "description": "Stokes visibilities"}),
        "weight": (("row", "stokes"), weight, {"units": "Jy-2",
                                               "description": "inverse variance; 0 = flagged or absent"}),
        "uvw": (("row", "uvw_axis"), uvw, {"units": "m",
                                                      "description": "MS convention, antenna1 - antenna2"}),
        "stokes": (("stokes",), np.array(STOKES), {}),
        "uvw_axis": (("uvw_axis",), np.array(["u", "v", "w"]), {}),
    }, attrs, raw=("vis", "uvw"))
    stats = SplitResult(
        channel=output_channel, freq_hz=data.freq, rows_read=int(data.vis.shape[0]), rows_kept=int(keep.sum()),
        visibilities_usable=usable, flagged_fraction=flagged_fraction, nonfinite_visibilities=nonfinite,
        negative_weights=negative_weights, stokes_present=list(labels), ionosphere=ionosphere,
    )
    write_qa(qa_path, "split", stats, rule)
    if keep.sum() == 0:
        log.warning("channel %d of %s has no usable visibilities; its images will be NaN", channel, selection.ms)
    log.info("channel %d (%s spw %d channel %d, %.6f MHz): %d of %d rows kept", output_channel, selection.ms,
             selection.spw, channel, data.freq / 1e6, keep.sum(), data.vis.shape[0])
    return stats


def _feed_angle_per_row(data, selection: Selection, feeds: FeedGeometry) -> np.ndarray:
    """The mean angle (rad) of the two feeds of each row's baseline at its time."""
    times, index = np.unique(data.time, return_inverse=True)
    ra, dec = selection.phase_centre_rad
    rotates = feeds.rotates.astype(float)
    angles = feed_angles(times, ra, dec, feeds.longitude_rad, feeds.latitude_rad, 0.0) * rotates[None, :]
    angles = angles + feeds.receptor_angle_rad[None, :]
    return 0.5 * (angles[index, data.antenna1] + angles[index, data.antenna2])


def split_block(inspection: str | os.PathLike, ms: str, ms_index: int, spw: int, channels: Sequence[int],
                spw_channels: Sequence[int], vis_dir: str | os.PathLike, qa_dir: str | os.PathLike, *, width: int,
                options: SplitOptions = SplitOptions(), ionosphere_rm: str | os.PathLike | None = None,
                rule: str = "spectropol") -> list[SplitResult]:
    """Split the output ``channels`` (channels ``spw_channels`` of ``spw`` of input ``ms_index``,
    as inspect_ms selected its data, read from ``ms``) into ``vis_dir/NNNNN.zarr`` with their QA
    documents in ``qa_dir/NNNNN.json``."""
    selection = read_inspection(inspection).selection(ms_index, spw)
    # The MS is named as it is now: a re-delivered copy has the content the fingerprints describe.
    selection = dataclasses.replace(selection, ms=str(ms))
    feeds = read_feed_geometry(str(ms)) if options.derotate_parallactic_angle else None
    rows = read_rows(selection)  # shared by every channel of the block
    vis_dir, qa_dir = Path(vis_dir), Path(qa_dir)
    vis_dir.mkdir(parents=True, exist_ok=True)
    qa_dir.mkdir(parents=True, exist_ok=True)
    return [split_channel(selection, spw_channel, vis_dir / f"{channel_name(channel, width)}.zarr",
                          qa_dir / f"{channel_name(channel, width)}.json", ionosphere_rm, output_channel=channel,
                          feeds=feeds, rows=rows, rule=rule)
            for channel, spw_channel in zip(channels, spw_channels)]
