"""Source finding on maps: background and rms from a mesh of sigma-clipped boxes, islands of
pixels above a threshold, merging of the islands found in several maps, and the power-law fit of a
Stokes I spectrum."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from ..constants import MAD_TO_SIGMA


def background_and_rms(image: np.ndarray, box: int = 32, clip: float = 3.0,
                       iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Background and rms maps from sigma-clipped medians and MADs in boxes, interpolated linearly."""
    ny, nx = image.shape
    by, bx = max(1, ny // box), max(1, nx // box)
    background = np.full((by, bx), np.nan)
    rms = np.full((by, bx), np.nan)
    for j in range(by):
        for i in range(bx):
            values = image[j * ny // by : (j + 1) * ny // by, i * nx // bx : (i + 1) * nx // bx]
            values = values[np.isfinite(values)]
            for _ in range(iterations):
                if values.size < 8:
                    break
                centre = np.median(values)
                spread = MAD_TO_SIGMA * np.median(np.abs(values - centre))
                keep = np.abs(values - centre) <= clip * spread
                if keep.all() or spread == 0:
                    break
                values = values[keep]
            if values.size:
                background[j, i] = np.median(values)
                rms[j, i] = MAD_TO_SIGMA * np.median(np.abs(values - background[j, i]))
    fill = lambda grid: np.where(np.isfinite(grid), grid, np.nanmedian(grid))
    zoom = (ny / by, nx / bx)
    return (ndimage.zoom(fill(background), zoom, order=1, mode="nearest")[:ny, :nx],
            ndimage.zoom(fill(rms), zoom, order=1, mode="nearest")[:ny, :nx])


@dataclasses.dataclass
class Island:
    y: float  # flux-weighted centroid (pixels)
    x: float
    peak_y: int
    peak_x: int
    snr: float
    npix: int
    maxima: int  # local maxima above the threshold: more than one suggests a blend


def find_islands(image: np.ndarray, threshold_sigma: float, box: int = 32) -> list[Island]:
    """Islands of pixels above threshold_sigma x the local rms (after subtracting the background)."""
    background, rms = background_and_rms(image, box)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(rms > 0, (image - background) / rms, 0.0)
    snr = np.nan_to_num(snr)
    labels, count = ndimage.label(snr > threshold_sigma)
    islands = []
    local_max = (snr == ndimage.maximum_filter(snr, size=3)) & (snr > threshold_sigma)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        member = labels[region] == index
        weights = np.where(member, image[region] - background[region], 0.0)
        yy, xx = np.nonzero(member)
        total = weights[yy, xx].sum()
        peak = np.argmax(np.where(member, snr[region], -np.inf))
        py, px = np.unravel_index(peak, member.shape)
        islands.append(Island(
            y=float((weights[yy, xx] * yy).sum() / total + region[0].start),
            x=float((weights[yy, xx] * xx).sum() / total + region[1].start),
            peak_y=int(py + region[0].start), peak_x=int(px + region[1].start), snr=float(snr[region][py, px]),
            npix=int(member.sum()), maxima=int((local_max[region] & member).sum()),
        ))
    return islands


def merge_islands(groups: list[list[Island]], radius_px: float) -> list[Island]:
    """One island per source found in any of the maps: later maps add only what is farther than
    radius_px from everything kept; the first map's positions win."""
    kept: list[Island] = []
    for islands in groups:
        for island in sorted(islands, key=lambda i: -i.snr):
            if all(np.hypot(island.y - k.y, island.x - k.x) > radius_px for k in kept):
                kept.append(island)
    return kept
