"""Faraday moments (Farnes et al. 2018, MNRAS 474, 3280): the mean, standard deviation, skewness
and excess kurtosis across frequency of Stokes Q, U and P = |Q + iU|, a source finder for
Faraday-complex polarised emission.

Computed with Dask over spatial tiles that hold the whole spectral axis, so memory per task is set
by ``chunk_mb`` and not by the number of channels. NaN channels are ignored pixel by pixel.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from .cube import open_cube
from .parallel import dask_scheduler, tile_side
from .products import atomic_path, open_dataset, provenance, quiet_zarr_v3, write_qa
from .qa import image_statistics
from .wcs import to_fits_header

log = logging.getLogger(__name__)

QUANTITIES = ("Q", "U", "P")
MOMENTS = ("mean", "std", "skewness", "kurtosis")


def weighted_moments(values: np.ndarray, weights: np.ndarray | None = None, axis: int = 0) -> np.ndarray:
    """Mean, standard deviation, skewness and excess kurtosis along ``axis`` (population moments,
    as scipy.stats with bias=True), with optional weights, ignoring NaN values.

    Returns an array with a new leading axis of length 4. Pixels with no finite value are NaN;
    a constant spectrum has NaN skewness and kurtosis.
    """
    values = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    finite = np.isfinite(values)
    if weights is None:
        w = finite.astype(np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape((-1,) + (1,) * (values.ndim - 1)) * finite
    x = np.where(finite, values, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * x).sum(axis=0) / total
        d = np.where(finite, x - mean, 0.0)
        m2 = (w * d**2).sum(axis=0) / total
        m3 = (w * d**3).sum(axis=0) / total
        m4 = (w * d**4).sum(axis=0) / total
        std = np.sqrt(m2)
        skew = np.where(m2 > 0, m3 / m2**1.5, np.nan)
        kurt = np.where(m2 > 0, m4 / m2**2 - 3.0, np.nan)
    return np.stack([mean, std, skew, kurt])


def _moments_block(q: np.ndarray, u: np.ndarray, wq: np.ndarray, wu: np.ndarray, wp: np.ndarray) -> np.ndarray:
    """(nfreq, ny, nx) Q and U -> (3 quantities, 4 moments, ny, nx) float32."""
    p = np.hypot(q, u)
    return np.stack([
        weighted_moments(q, wq), weighted_moments(u, wu), weighted_moments(p, wp),
    ]).astype(np.float32)


def faraday_moments(cube_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike, *,
                    weighting: str = "none", chunk_mb: float = 64.0, scheduler: str = "threads", nthreads: int = 1) -> dict:
    """Faraday moment maps of the cube; written as a Zarr store with variables (quantity, moment, y, x)."""
    import dask.array as da
    import xarray as xr

    from .faraday_cube import require_linear_polarisation

    cube = open_cube(cube_store)
    require_linear_polarisation(cube, cube_store)
    image = cube.attrs["image"]
    nfreq = cube.sizes["freq"]
    stored = cube[image].encoding.get("chunks", (1, 1, cube.sizes["y"], cube.sizes["x"]))[-1]
    # Q and U as float64 with temporaries: 2 x 8 x 4 bytes per pixel and channel
    side = tile_side(cube.sizes["y"], cube.sizes["x"], nfreq * 2 * 8 * 4, chunk_mb, align=stored)
    q = cube[image].sel(stokes="Q").data.rechunk((nfreq, side, side))
    u = cube[image].sel(stokes="U").data.rechunk((nfreq, side, side))

    if weighting == "noise":
        rms = cube["rms"].sel(stokes=["Q", "U"]).values.astype(np.float64)
        with np.errstate(divide="ignore"):
            wq, wu = (np.where(np.isfinite(r) & (r > 0), 1.0 / r**2, 0.0) for r in rms.T)
            var_p = 0.5 * (rms[:, 0] ** 2 + rms[:, 1] ** 2)
            wp = np.where(np.isfinite(var_p) & (var_p > 0), 1.0 / var_p, 0.0)
    elif weighting == "none":
        wq = wu = wp = np.ones(nfreq)
    else:
        raise ValueError(f"unknown moments weighting {weighting!r} (none or noise)")

    block = functools.partial(_moments_block, wq=wq, wu=wu, wp=wp)
    result = da.map_blocks(
        block, q, u, dtype=np.float32,
        drop_axis=0, new_axis=[0, 1], chunks=((3,), (4,)) + q.chunks[1:],
    )
    dataset = xr.Dataset(
        {"moments": (("quantity", "moment", "y", "x"), result, {"units": "Jy/beam", "description":
                     "Faraday moments across frequency (skewness and kurtosis are dimensionless)"})},
        coords={"quantity": list(QUANTITIES), "moment": list(MOMENTS)},
        attrs={"wcs": cube.attrs["wcs"], "weighting": weighting, "channels": nfreq,
               "provenance": provenance({"cube": str(cube_store)})},
    )
    log.info("moments of %d channels in tiles of %d x %d pixels (%d tasks), %d threads", nfreq, side, side,
             result.npartitions, nthreads)
    with dask_scheduler(scheduler, nthreads, "faraday_moments"), atomic_path(out_store) as partial, quiet_zarr_v3():
        dataset.to_zarr(partial, mode="w", zarr_format=3, consolidated=True,
                        encoding={"moments": {"chunks": (1, 1, side, side)}})

    maps = open_moments(out_store)["moments"].load()
    stats = {f"{qty}_{mom}": image_statistics(maps.sel(quantity=qty, moment=mom).values) for qty in QUANTITIES for mom in MOMENTS}
    write_qa(qa_path, "moments", {"channels": nfreq, "weighting": weighting, "maps": stats}, rule="faraday_moments")
    return stats


def open_moments(store: str | os.PathLike):
    """The moment maps as a labelled xarray Dataset."""
    return open_dataset(store, "moments")


def export_moment_fits(moments_store: str | os.PathLike, fits_paths: dict[tuple[str, str], str | os.PathLike]) -> None:
    """One 2-D FITS image per (quantity, moment), with the celestial WCS."""
    from astropy.io import fits

    maps = open_moments(moments_store)
    for (quantity, moment), path in fits_paths.items():
        plane = maps["moments"].sel(quantity=quantity, moment=moment).values.astype(np.float32)
        unit = "Jy/beam" if moment in ("mean", "std") else ""
        keywords = maps.attrs["wcs"] | {"BUNIT": unit, "BTYPE": f"{quantity} {moment}", "ORIGIN": "spectropol",
                                        "PROVENANCE": maps.attrs["provenance"]}
        with atomic_path(path) as partial:
            fits.PrimaryHDU(plane, header=to_fits_header(keywords)).writeto(partial)
