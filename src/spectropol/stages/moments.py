"""The moments stage: Faraday moment maps of the cube's Q, U and P (Farnes et al. 2018) and of
Stokes I, over spatial tiles that hold the whole spectral axis, and their FITS export. The workflow
computes them in the Faraday-depth stage's one pass over the cube (stages.faraday), which reads the
cube once for both; faraday_moments computes them alone."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from ..io.cube import open_cube, require_linear_polarisation, stored_chunk
from ..io.fits import write_map
from ..io.stores import open_dataset, open_store, provenance, quiet_zarr_v3, select
from ..kernels.moments import MOMENTS, QUANTITIES, moments_block
from ..kernels.statistics import image_statistics
from ..options import DaskOptions, MomentsOptions
from .tiling import map_tiles, tile_side, write_array_product

log = logging.getLogger(__name__)

# Every (quantity, moment) map, in the order of the store's axes: the FITS products of the stage.
MOMENT_MAPS = tuple((quantity, moment) for quantity in QUANTITIES for moment in MOMENTS)


@dataclasses.dataclass
class MomentsResult:
    """The moments stage's QA figures: channels, weighting and statistics of each map."""

    channels: int
    weighting: str
    maps: dict


def channel_weights(rms_iqu: np.ndarray, weighting: str) -> tuple[np.ndarray, ...]:
    """Weights of each channel for I, Q, U and P from the (nchan, 3) rms of its I, Q and U planes:
    1/rms^2 ('noise') or equal ('none'); 0 without data."""
    if weighting == "none":
        ones = np.ones(len(rms_iqu))
        return ones, ones, ones, ones
    if weighting != "noise":
        raise ValueError(f"unknown moments weighting {weighting!r} (none or noise)")
    rms = rms_iqu.astype(np.float64)
    with np.errstate(divide="ignore"):
        wi, wq, wu = (np.where(np.isfinite(r) & (r > 0), 1.0 / r**2, 0.0) for r in rms.T)
        var_p = 0.5 * (rms[:, 1] ** 2 + rms[:, 2] ** 2)
        wp = np.where(np.isfinite(var_p) & (var_p > 0), 1.0 / var_p, 0.0)
    return wi, wq, wu, wp


def moments_attrs(wcs: dict, options: MomentsOptions, channels: int, inputs: dict) -> dict:
    """Attributes of a moments store."""
    return {"wcs": wcs, "weighting": options.weighting, "channels": channels, "provenance": provenance(inputs)}


MOMENTS_VARIABLE = {"units": "Jy/beam", "description": "Faraday moments across frequency (skewness and kurtosis are "
                                                       "dimensionless); the mean of I is the band-averaged image"}


def summarise_moments(store: str | os.PathLike, options: MomentsOptions, channels: int) -> MomentsResult:
    """The QA figures of a moments store: statistics of every map, read one at a time."""
    import zarr

    with quiet_zarr_v3():
        maps = zarr.open_group(str(store), mode="r")["moments"]
        stats = {f"{q}_{m}": image_statistics(maps[QUANTITIES.index(q), MOMENTS.index(m)]) for q, m in MOMENT_MAPS}
    return MomentsResult(channels=channels, weighting=options.weighting, maps=stats)


def faraday_moments(cube_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                    options: MomentsOptions = MomentsOptions(), dask: DaskOptions = DaskOptions(), *,
                    chunk_mb: float = 64.0, rule: str = "spectropol") -> MomentsResult:
    """Faraday moment maps of the cube alone, Dask over tiles of about ``chunk_mb``; written as a Zarr
    store with variables (quantity, moment, y, x). (The workflow computes them in the one pass of
    stages.faraday.faraday_depth, which reads the cube once for both.)"""
    import xarray as xr

    cube = open_cube(cube_store)
    require_linear_polarisation(cube, cube_store)
    image = cube.attrs["image"]
    nfreq = cube.sizes["freq"]
    # I, Q and U as float32 and P, with the kernel's copies: about 6 x 4 bytes per pixel and channel
    side = tile_side(cube.sizes["y"], cube.sizes["x"], nfreq * 6 * 4, chunk_mb, align=stored_chunk(cube))
    weights = channel_weights(cube["rms"].sel(stokes=["I", "Q", "U"]).values, options.weighting)
    has_i = "I" in cube.attrs.get("stokes_present", ["I"])

    def block(i, q, u):
        ny, nx = q.shape[1:]
        flat = [None if a is None else a.reshape(a.shape[0], -1) for a in (i if has_i else None, q, u)]
        return moments_block(*flat, *weights).reshape(len(QUANTITIES), len(MOMENTS), ny, nx)

    planes = [cube[image].sel(stokes=s).data for s in ("I", "Q", "U")]
    moments = map_tiles(block, planes, side, (len(QUANTITIES), len(MOMENTS)), np.float32)
    dataset = xr.Dataset(
        {"moments": (("quantity", "moment", "y", "x"), moments, MOMENTS_VARIABLE)},
        coords={"quantity": list(QUANTITIES), "moment": list(MOMENTS)},
        attrs=moments_attrs(cube.attrs["wcs"], options, nfreq, {"cube": str(cube_store)}),
    )
    log.info("moments of %d channels in tiles of %d x %d pixels (%d tasks), %d threads", nfreq, side, side,
             moments.npartitions, dask.threads)
    return write_array_product(dataset, out_store, qa_path, lambda store: summarise_moments(store, options, nfreq),
                               kind="moments", rule=rule, dask=dask, label="faraday_moments",
                               encoding={"moments": {"chunks": (1, 1, side, side)}})


def open_moments(store: str | os.PathLike, *, dask: bool = True):
    """The moment maps as a labelled xarray Dataset."""
    return open_dataset(store, "moments", dask=dask)


def export_moment_fits(moments_store: str | os.PathLike, fits_paths: dict[tuple[str, str], str | os.PathLike]) -> None:
    """One 2-D FITS image per (quantity, moment) of MOMENT_MAPS, with the celestial WCS; every map
    must have a path, so that a new map cannot go unexported."""
    missing = [f"{q}_{m}" for q, m in MOMENT_MAPS if (q, m) not in fits_paths]
    if missing:
        raise ValueError(f"no FITS path for moment maps {missing}")
    maps = open_store(moments_store, "moments")  # zarr alone: xarray and dask.array cost a small job 0.7 s
    for (quantity, moment), path in fits_paths.items():
        plane = select(maps, "moments", quantity=quantity, moment=moment)
        write_map(path, plane, maps.attrs["wcs"], bunit="Jy/beam" if moment in ("mean", "std") else "",
                  btype=f"{quantity} {moment}", provenance=maps.attrs["provenance"])
