"""Readers of the per-channel stores, the contract between the split, image and cube stages:
``work/vis/BLOCK/NNNNN.zarr`` (Stokes visibilities, weights, uvw) and
``results/channels/BLOCK/NNNNN.zarr`` (images of each kind over (stokes, y, x), PSF, beam, WCS)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import fail
from .stores import quiet_zarr_v3, read_store


def channel_name(channel: int, width: int) -> str:
    """A channel's file name stem: its number zero-padded to ``width`` digits."""
    return f"{channel:0{width}d}"


def read_channel_vis(store: str | os.PathLike) -> tuple[dict, dict]:
    """The arrays (vis, weight, uvw) and attributes of a split store, with a one-line error if it is not one."""
    try:
        return read_store(store, ("vis", "weight", "uvw"))
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(store, f"not a spectropol channel visibility store ({err})") from None


def read_channel_image(store: str | os.PathLike, image: str) -> tuple[np.ndarray, dict]:
    """The (stokes, y, x) planes of one image kind and the attributes of a channel image store."""
    try:
        arrays, attrs = read_store(store, (image,))
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(store, f"not a spectropol channel image store with {image} planes ({err})") from None
    return arrays[image], attrs


def read_channel_attrs(store: str | os.PathLike) -> dict:
    """The attributes of a channel store, visibilities or images (no arrays read)."""
    import zarr

    try:
        with quiet_zarr_v3():
            return dict(zarr.open_group(store, mode="r").attrs)
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(store, f"not a spectropol channel store ({err})") from None
