"""Channel lists and blocks: which channels are imaged, in which jobs.

Blocks (the unit of a split or image job, and of a rerun) are runs of consecutive output channels
of one spectral window of one MS, so that re-delivering one subband MS reruns only its own blocks.
They are cut from the window's full channel range, not from the channels left after exclusions,
so that excluding a channel changes only its own block.

``block: auto`` sizes them from an estimate of the imaging work per channel (work_per_channel_s):
as many channels as make about TARGET_JOB_S seconds of work, so that a job's start-up (about 3 s of
Python imports here) is a small part of it, and never more than MAX_JOBS jobs in all, so that the
DAG stays small at any channel count. Blocks of one window are of equal size (to within one).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence

TARGET_JOB_S = 20.0
MAX_JOBS = 512
# Measured on the 2-core development machine (2026-12, ducc0 0.42): a gridding pass (one Stokes
# or the PSF) costs about 0.6 us per visibility plus 0.06 s per 1024^2 image; 5 passes make the
# dirty images and PSF, and CLEAN adds about 24 passes (3 Stokes groups, about 4 major cycles)
# and 9 s of minor cycles per 1000 iterations at 1024^2.
SECONDS_PER_VISIBILITY = 0.6e-6
SECONDS_PER_MEGAPIXEL_PASS = 0.06
CLEAN_SECONDS_PER_MEGAPIXEL_PER_1000 = 9.0


def parse_channel_ranges(items: Iterable[int | str], nchan: int, what: str = "channel list") -> list[int]:
    """Channel numbers from a list of integers and inclusive ranges "first-last", each inside 0..nchan-1."""
    chosen = set()
    for item in items:
        if isinstance(item, int):
            first = last = item
        else:
            first, _, last = str(item).partition("-")
            first, last = int(first), int(last or first)
        if not 0 <= first <= last < nchan:
            raise ValueError(f"{what}: {item!r} is not within channels 0..{nchan - 1}")
        chosen.update(range(first, last + 1))
    return sorted(chosen)


def block_label(first: int, last: int, width: int) -> str:
    return f"{first:0{width}d}" if first == last else f"{first:0{width}d}-{last:0{width}d}"


def channel_width(nchan: int) -> int:
    """Digits in channel names: five, more only beyond 99,999 channels."""
    return max(5, len(str(nchan - 1)))


def work_per_channel_s(rows: float, npix: int, niter: int) -> float:
    """Estimated seconds to image one channel of ``rows`` visibilities at npix^2 (module docstring)."""
    megapixels = (npix / 1024) ** 2
    passes = 5 + (24 if niter > 0 else 0)
    clean = CLEAN_SECONDS_PER_MEGAPIXEL_PER_1000 * megapixels * min(niter, 5000) / 1000
    return passes * (SECONDS_PER_VISIBILITY * rows + SECONDS_PER_MEGAPIXEL_PASS * megapixels) + clean


def auto_block(group_sizes: Sequence[int], work_s: float) -> list[int]:
    """Channels per block for each group (spectral window of an MS) of ``group_sizes`` channels,
    each channel ``work_s`` seconds of work: about TARGET_JOB_S per job, at most MAX_JOBS jobs."""
    total = sum(group_sizes)
    floor = math.ceil(total / MAX_JOBS)  # fewer channels per job would make too many jobs
    sizes = []
    for n in group_sizes:
        jobs = max(1, round(n * work_s / TARGET_JOB_S))
        size = max(math.ceil(n / jobs), floor, 1)
        sizes.append(min(size, n))
    return sizes


def plan_blocks(nchan: int, block: int | Sequence[int], exclude: Sequence[int] = (),
                groups: Sequence[tuple[int, int]] | None = None) -> dict[str, list[int]]:
    """{label: channels} for every block that keeps at least one channel, in frequency order.
    ``groups`` are (first, count) runs of channels that a block never crosses (default: one run);
    ``block`` is the channels per block, one for all groups or one per group."""
    excluded = set(exclude)
    width = channel_width(nchan)
    groups = groups or [(0, nchan)]
    sizes = [block] * len(groups) if isinstance(block, int) else list(block)
    blocks = {}
    for (start, count), size in zip(groups, sizes):
        for first in range(start, start + count, size):
            last = min(start + count, first + size) - 1
            kept = [c for c in range(first, last + 1) if c not in excluded]
            if kept:
                blocks[block_label(first, last, width)] = kept
    return blocks


def channel_settings(imaging: dict, clean: dict, overrides: Sequence[dict], nchan: int) -> list[dict]:
    """Per channel {"imaging": ..., "clean": ...} (config sections): the global settings with
    every override that names the channel applied in order (a later override wins)."""
    settings = [{"imaging": imaging, "clean": clean} for _ in range(nchan)]
    for k, override in enumerate(overrides):
        for channel in parse_channel_ranges(override["channels"], nchan, f"channels.overrides[{k}]"):
            merged = copy.deepcopy(settings[channel])
            merged["imaging"] = {**merged["imaging"], **override.get("imaging", {})}
            merged["clean"] = {**merged["clean"], **override.get("clean", {})}
            settings[channel] = merged
    return settings
