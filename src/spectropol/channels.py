"""Which channels are imaged, in which jobs, with which settings.

Channels are grouped into fixed blocks of ``block`` consecutive channels of the spectral window
(the unit of a split or image job, and of a rerun). Blocks are cut from the full channel range, not
from the channels left after exclusions, so that excluding a channel changes only its own block.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence


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


def plan_blocks(nchan: int, block: int, exclude: Sequence[int] = ()) -> dict[str, list[int]]:
    """{label: channels} for every block that keeps at least one channel, in frequency order."""
    excluded = set(exclude)
    width = channel_width(nchan)
    blocks = {}
    for first in range(0, nchan, block):
        last = min(nchan, first + block) - 1
        kept = [c for c in range(first, last + 1) if c not in excluded]
        if kept:
            blocks[block_label(first, last, width)] = kept
    return blocks


def channel_settings(imaging: dict, clean: dict, overrides: Sequence[dict], nchan: int) -> list[dict]:
    """Per channel {"imaging": ..., "clean": ...}: the global settings with every override that
    names the channel applied in order (a later override wins)."""
    settings = [{"imaging": imaging, "clean": clean} for _ in range(nchan)]
    for k, override in enumerate(overrides):
        for channel in parse_channel_ranges(override["channels"], nchan, f"channels.overrides[{k}]"):
            merged = copy.deepcopy(settings[channel])
            merged["imaging"] = {**merged["imaging"], **override.get("imaging", {})}
            merged["clean"] = {**merged["clean"], **override.get("clean", {})}
            settings[channel] = merged
    return settings
