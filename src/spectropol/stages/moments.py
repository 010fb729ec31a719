"""The moments stage: Faraday moment maps of the cube's Q, U and P (Farnes et al. 2018), Dask over
spatial tiles that hold the whole spectral axis, and their FITS export."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os

import numpy as np

from ..io.cube import open_cube, require_linear_polarisation, stored_chunk
from ..io.fits import write_map
from ..io.stores import open_dataset, provenance
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


def channel_weights(rms_qu: np.ndarray, weighting: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights of each channel for Q, U and P: 1/rms^2 ('noise') or equal ('none'); 0 without data."""
    if weighting == "none":
        ones = np.ones(len(rms_qu))
        return ones, ones, ones
    if weighting != "noise":
        raise ValueError(f"unknown moments weighting {weighting!r} (none or noise)")
    rms = rms_qu.astype(np.float64)
    with np.errstate(divide="ignore"):
        wq, wu = (np.where(np.isfinite(r) & (r > 0), 1.0 / r**2, 0.0) for r in rms.T)
        var_p = 0.5 * (rms[:, 0] ** 2 + rms[:, 1] ** 2)
        wp = np.where(np.isfinite(var_p) & (var_p > 0), 1.0 / var_p, 0.0)
    return wq, wu, wp


def faraday_moments(cube_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                    options: MomentsOptions = MomentsOptions(), dask: DaskOptions = DaskOptions(), *,
                    rule: str = "spectropol") -> MomentsResult:
    """Faraday moment maps of the cube; written as a Zarr store with variables (quantity, moment, y, x)."""
    import xarray as xr

    cube = open_cube(cube_store)
    require_linear_polarisation(cube, cube_store)
    image = cube.attrs["image"]
    nfreq = cube.sizes["freq"]
    # Q and U as float64 with temporaries: 2 x 8 x 4 bytes per pixel and channel
    side = tile_side(cube.sizes["y"], cube.sizes["x"], nfreq * 2 * 8 * 4, options.chunk_mb, align=stored_chunk(cube))
    wq, wu, wp = channel_weights(cube["rms"].sel(stokes=["Q", "U"]).values, options.weighting)
    block = functools.partial(moments_block, wq=wq, wu=wu, wp=wp)
    q, u = (cube[image].sel(stokes=s).data for s in ("Q", "U"))
    moments = map_tiles(block, [q, u], side, (len(QUANTITIES), len(MOMENTS)), np.float32)
    dataset = xr.Dataset(
        {"moments": (("quantity", "moment", "y", "x"), moments, {"units": "Jy/beam", "description":
                     "Faraday moments across frequency (skewness and kurtosis are dimensionless)"})},
        coords={"quantity": list(QUANTITIES), "moment": list(MOMENTS)},
        attrs={"wcs": cube.attrs["wcs"], "weighting": options.weighting, "channels": nfreq,
               "provenance": provenance({"cube": str(cube_store)})},
    )
    log.info("moments of %d channels in tiles of %d x %d pixels (%d tasks), %d threads", nfreq, side, side,
             moments.npartitions, dask.threads)

    def summarise(store) -> MomentsResult:
        maps = open_moments(store)["moments"].load()
        stats = {f"{q}_{m}": image_statistics(maps.sel(quantity=q, moment=m).values) for q, m in MOMENT_MAPS}
        return MomentsResult(channels=nfreq, weighting=options.weighting, maps=stats)

    return write_array_product(dataset, out_store, qa_path, summarise, kind="moments", rule=rule, dask=dask,
                               label="faraday_moments", encoding={"moments": {"chunks": (1, 1, side, side)}})


def open_moments(store: str | os.PathLike):
    """The moment maps as a labelled xarray Dataset."""
    return open_dataset(store, "moments")


def export_moment_fits(moments_store: str | os.PathLike, fits_paths: dict[tuple[str, str], str | os.PathLike]) -> None:
    """One 2-D FITS image per (quantity, moment) of MOMENT_MAPS, with the celestial WCS; every map
    must have a path, so that a new map cannot go unexported."""
    missing = [f"{q}_{m}" for q, m in MOMENT_MAPS if (q, m) not in fits_paths]
    if missing:
        raise ValueError(f"no FITS path for moment maps {missing}")
    maps = open_moments(moments_store)
    for (quantity, moment), path in fits_paths.items():
        plane = maps["moments"].sel(quantity=quantity, moment=moment).values
        write_map(path, plane, maps.attrs["wcs"], bunit="Jy/beam" if moment in ("mean", "std") else "",
                  btype=f"{quantity} {moment}", provenance=maps.attrs["provenance"])
