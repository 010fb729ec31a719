"""The cube as later stages read it: a labelled Zarr store (freq, stokes, y, x) with per-channel
beams and rms, opened lazily; and a writer of in-memory cubes in the same layout, so that cubes
made elsewhere (or in tests) can enter the Faraday stages."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..constants import STOKES
from ..errors import fail
from ..kernels.statistics import mad_rms
from .chunks import ChunkFiles
from .stores import atomic_path, batch_codecs, open_dataset, open_store, provenance, quiet_zarr_v3


def stored_chunk(cube) -> int:
    """Side of the cube's stored spatial chunks, so that array stages read whole chunks."""
    image = cube.attrs["image"]
    return cube[image].encoding.get("chunks", (1, 1, cube.sizes["y"], cube.sizes["x"]))[-1]


def require_linear_polarisation(cube, cube_store) -> None:
    """The Faraday stages need Stokes Q and U; say so plainly when the data could not form them."""
    present = cube.attrs.get("stokes_present", list(STOKES))
    if not {"Q", "U"} <= set(present):
        raise fail(cube_store, f"holds Stokes {', '.join(present)} only (the MS lacks cross-hand correlations); "
                               "Faraday stages need Q and U")


def cube_shard(nstokes: int, npix_y: int, npix_x: int, chunk: int) -> tuple[int, int, int, int]:
    """The cube's shard (with cube.shard): one channel, every Stokes, the whole image, in chunks of
    (1, 1, chunk, chunk).

    One file per channel plane, so that the file count is the channel count, not channels x Stokes x
    spatial tiles (4,096 channels of 512^2 in 256^2 chunks: 4,100 files, not 65,537; SKA's 65,536
    channels of 20,000^2: 65,536, not 1.6e9), while the Faraday stage still reads single chunks
    (zarr reads a shard's index, then the chunk's bytes). A plane is what gather_cube writes at once
    and what it holds in memory anyway, so nothing is read back to write a shard. Not the default:
    zarr 3.1.6 reads chunks through shards more slowly: the Faraday pass over a 256-channel 512^2
    cube took 11.7 s against 8.0 s (benchmarks/storage.py, docs/scaling.md)."""
    def whole(n):
        return -(-n // chunk) * chunk

    return 1, nstokes, whole(npix_y), whole(npix_x)


def write_cube(cube_store: str | os.PathLike, data: np.ndarray, freqs: np.ndarray, wcs: dict, *,
               rms: np.ndarray | None = None,
               beams: np.ndarray | None = None, chunk: int = 256, image: str = "dirty", shard: bool = False) -> None:
    """Write an in-memory cube (freq, stokes I/Q/U/V, y, x) in the layout gather_cube produces, so
    that cubes from elsewhere (or made in tests) can enter the Faraday stages. ``rms`` (freq, stokes)
    defaults to the MAD rms of each plane; ``beams`` (freq, 3: bmaj, bmin, bpa in deg) to NaN;
    ``shard``: a file per channel plane (cube_shard)."""
    import xarray as xr

    nfreq = data.shape[0]
    if rms is None:
        rms = np.array([[mad_rms(plane) for plane in channel] for channel in data], dtype=np.float32)
    beams = np.full((nfreq, 3), np.nan) if beams is None else np.asarray(beams)
    dataset = xr.Dataset(
        {image: (("freq", "stokes", "y", "x"), np.asarray(data, dtype=np.float32), {"units": "Jy/beam"}),
         "rms": (("freq", "stokes"), np.asarray(rms, dtype=np.float32), {"units": "Jy/beam"}),
         "bmaj": ("freq", beams[:, 0], {"units": "deg"}), "bmin": ("freq", beams[:, 1], {"units": "deg"}),
         "bpa": ("freq", beams[:, 2], {"units": "deg"})},
        coords={"freq": ("freq", np.asarray(freqs, dtype=np.float64), {"units": "Hz"}), "stokes": list(STOKES),
                "channel": ("freq", np.arange(nfreq, dtype=np.int32))},
        attrs={"image": image, "wcs": wcs, "flagged_channels": [], "provenance": provenance({"source": "arrays"})},
    )
    chunk = min(chunk, data.shape[2], data.shape[3])
    encoding = {"chunks": (1, 1, chunk, chunk)}
    if shard:
        encoding["shards"] = cube_shard(data.shape[1], data.shape[2], data.shape[3], chunk)
    with atomic_path(cube_store) as partial, quiet_zarr_v3():
        dataset.chunk({"freq": 1} if shard else {"freq": 1, "stokes": 1, "y": chunk, "x": chunk}).to_zarr(
            partial, mode="w", zarr_format=3, consolidated=True, encoding={image: encoding})


def open_cube(cube_store: str | os.PathLike, *, dask: bool = True):
    """The cube as a labelled xarray Dataset (lazy; dask-backed unless ``dask`` is False)."""
    return open_dataset(cube_store, "cube", dask=dask)


# Memory for the cube read by cut-outs at a time: a stored chunk is decoded whole, so reading the
# cut-outs of a chunk's sources over all channels held (channels x Stokes x chunk) twice, 0.9 GB for
# 256 channels of 256^2 chunks and 15 GB at 4,096 channels; channel slabs keep it to this.
CUTOUT_MB = 96


def cutout_slabs(cube_store: str | os.PathLike, nstokes: int, ncutouts: int, half: int,
                 budget_mb: float | None = None) -> list[slice]:
    """Channel ranges for pixel_cutouts so that a slab's cut-outs and the chunk region read for them
    (float32: the region of up to every Stokes as zarr returns it, and the Stokes picked from it)
    fit ``budget_mb`` (default CUTOUT_MB)."""
    budget_mb = CUTOUT_MB if budget_mb is None else budget_mb
    cube = open_store(cube_store, "cube")
    array = cube[cube.attrs["image"]]
    nfreq, chunk = array.shape[0], array.chunks[-1]
    side = 2 * half + 1
    per_channel = 4 * (ncutouts * nstokes * side**2 + (len(STOKES) + nstokes) * min(chunk, array.shape[-1])**2)
    step = int(max(1, min(nfreq, budget_mb * 1e6 // per_channel)))
    return [slice(first, min(nfreq, first + step)) for first in range(0, nfreq, step)]


def pixel_cutouts(cube_store: str | os.PathLike, stokes: tuple[str, ...], centres: list[tuple[float, float]],
                  half: int, channels: slice = slice(None)) -> list[tuple[np.ndarray, int, int]]:
    """Cut-outs (nfreq, len(stokes), <= 2 half + 1, <= 2 half + 1) float32 about pixel centres (y, x),
    each with the map pixel (y, x) of its first pixel; the ``channels`` of the spectral axis (all by
    default; cutout_slabs gives ranges of bounded memory), clipped at the map's edge. Each stored
    spatial chunk that any cut-out reaches is read once, every Stokes together, as the box that
    holds what the cut-outs need of it: a chunk is decoded whole, per channel and Stokes, so
    chunks, not pixels, are what a source costs (16 sources of a 256-channel cube in 128^2 chunks
    reach 9 chunks where the boxes about each chunk's sources reached 13)."""
    cube = open_store(cube_store, "cube")
    image = cube.attrs["image"]
    names = [str(s) for s in cube["stokes"][...]]
    planes = [names.index(s) for s in stokes]
    first = min(planes)
    picked = [k - first for k in planes]
    array = cube[image]
    reader = ChunkFiles.open(Path(cube_store) / image)  # zarr's reading costs 0.65 ms a chunk (io.chunks)
    chunk = array.chunks[-1]
    # a cut-out is a column of small chunks, one per channel and Stokes: decoded 32 at a time and
    # 10 batches at once, 4 sources' I, Q, U of 256 channels in 128^2 chunks took 1.3 s, not 2.2 s
    batch_codecs(4 * chunk**2, concurrency=10)
    nfreq = len(range(*channels.indices(array.shape[0])))
    ny, nx = array.shape[-2:]
    boxes = []
    for y, x in centres:
        yc, xc = int(round(y)), int(round(x))
        boxes.append((max(0, yc - half), min(ny, yc + half + 1), max(0, xc - half), min(nx, xc + half + 1)))
    reaching: dict[tuple[int, int], list[int]] = {}
    for n, (ya, yb, xa, xb) in enumerate(boxes):
        for cy in range(ya // chunk, (yb - 1) // chunk + 1):
            for cx in range(xa // chunk, (xb - 1) // chunk + 1):
                reaching.setdefault((cy, cx), []).append(n)
    cutouts = [np.full((nfreq, len(planes), yb - ya, xb - xa), np.nan, np.float32) for ya, yb, xa, xb in boxes]
    for (cy, cx), members in reaching.items():
        y0 = max(cy * chunk, min(boxes[n][0] for n in members))
        y1 = min((cy + 1) * chunk, max(boxes[n][1] for n in members))
        x0 = max(cx * chunk, min(boxes[n][2] for n in members))
        x1 = min((cx + 1) * chunk, max(boxes[n][3] for n in members))
        block = np.asarray(reader[channels, first:max(planes) + 1, y0:y1, x0:x1])[:, picked]
        for n in members:
            ya, yb, xa, xb = boxes[n]
            top, bottom, left, right = max(ya, y0), min(yb, y1), max(xa, x0), min(xb, x1)
            if top < bottom and left < right:
                cutouts[n][:, :, top - ya:bottom - ya, left - xa:right - xa] = \
                    block[:, :, top - y0:bottom - y0, left - x0:right - x0]
    return [(cutout, box[0], box[2]) for cutout, box in zip(cutouts, boxes)]
