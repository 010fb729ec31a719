"""The Faraday-depth stage on the cube: RM synthesis, RM-CLEAN and the peak maps in one pass over
spatial tiles that hold the whole spectral axis, so that no N_pix x N_phi cube has to be written to be
searched. Dask computes a few tiles at a time (memory per tile set by ``chunk_mb``, whatever the
number of channels or depths); each tile's maps are written to their region of the peak store and the
FDF spectra of its candidate pixels (peak SNR at least ``candidate_snr``) are appended to a compact
store the catalogue and report read. The full FDF cubes are written only when asked (save_fdf).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from ..constants import SPEED_OF_LIGHT
from ..errors import fail
from ..io.fits import product_keywords, write_cube_by_tiles, write_map
from ..io.polarisation import StokesSource, stokes_from_cube
from ..io.stores import (
    DECODE_MB,
    atomic_path,
    batch_codecs,
    build_store,
    open_dataset,
    open_store,
    provenance,
    quiet_zarr_v3,
    store_bytes,
)
from ..io.wcs import fardepth_axis
from ..kernels.faraday import (
    MATRIX_ROWS_ELEMENTS,
    REFINE_BATCH,
    FourierSynthesis,
    Scratch,
    SymmetricSynthesis,
    doubled_phi,
    faraday_depth_block,
    faraday_grid,
    fdf_noise_theoretical,
    fourier_scratch_bytes,
    restoring_function,
    rmsf,
    symmetric_scratch_bytes,
    synthesis_operator,
)
from ..kernels.moments import MOMENTS, QUANTITIES, moments_block
from ..kernels.statistics import image_statistics
from ..kernels.stokes_i import band_shape, fit_stokes_i_pixels, synthesis_band_mean
from ..options import DaskOptions, FaradayProductsOptions, MomentsOptions, RMCleanOptions, RMSynthesisOptions
from ..qa.documents import write_qa
from .moments import MOMENTS_VARIABLE, channel_weights, moments_attrs, summarise_moments
from .tiling import dask_scheduler, limit_heap_growth, tile_side

log = logging.getLogger(__name__)

# The peak maps: name -> (unit, description). Each is a variable of peaks.zarr and a FITS product.
PEAK_MAPS = {
    "peak_pi": ("Jy/beam", "peak polarised intensity of the FDF (evaluated at peak_phi)"),
    "peak_pi_debiased": ("Jy/beam", "peak polarised intensity, bias corrected: sqrt(P^2 - 2.3 sigma^2)"),
    "peak_phi": ("rad/m2", "Faraday depth of the peak (evaluated exactly from Q and U where SNR >= candidate_snr)"),
    "peak_phi_err": ("rad/m2", "error of the peak Faraday depth, FWHM / (2 SNR)"),
    "pol_angle0_deg": ("deg", "intrinsic polarisation angle, derotated to lambda^2 = 0"),
    "pol_angle0_err_deg": ("deg", "error of the intrinsic polarisation angle"),
    "fdf_noise": ("Jy/beam", "noise of the FDF (real or imaginary part)"),
    "snr": ("", "peak polarised intensity over FDF noise"),
    "cc_moment2": ("rad/m2", "second moment of all clean components about their mean depth, noise components "
                   "included (the catalogue's rm_width counts the significant ones only)"),
}
# Where the cube has Stokes I: the Stokes I model of every bright pixel, fitted in the same pass.
STOKES_I_MAPS = {
    "stokes_i_model": ("Jy/beam", "Stokes I model at the polarisation reference frequency (log-polynomial fitted "
                                  "per pixel where band-mean I reaches stokes_i_snr)"),
    "spectral_index": ("", "spectral index of that model at the reference frequency"),
    "stokes_i_model_order": ("", "order of the log-polynomial chosen by AICc"),
    "fracpol": ("", "fractional polarisation at the reference frequency: debiased peak PI, taken there through the "
                    "Stokes I model, over the model"),
}
FDF_PARTS = {"real": np.real, "imag": np.imag, "amplitude": np.abs}
# The stores of the stage: always the peaks and the candidates' spectra; the cubes with save_fdf.
FARADAY_STORES = {"peaks": "peaks.zarr", "candidates": "fdf_candidates.zarr",
                  "fdf_dirty": "fdf_dirty.zarr", "fdf_clean": "fdf_clean.zarr"}
# Candidate spectra per stored chunk, and per shard (one file): rows are gathered and appended a
# shard at a time (each append rewrites the array's metadata, and a partly filled shard would be
# rewritten by the next), until the last, which stores only the chunks it holds (a plain chunk of
# thousands of rows would be stored whole, padded, for a field with a few candidates). The spectra
# are noise-like complex floats, stored raw; the components, mostly zeros, compressed.
CANDIDATE_CHUNK = 256
CANDIDATE_FLUSH = 16 * CANDIDATE_CHUNK  # rows per shard at most
# ... and at most this much of one spectra array per shard, so that the rows gathered for it stay
# small where the depths are many (20,000 at 4,096 channels: 256 rows, where 4,096 of the three
# arrays would hold 2 GB).
CANDIDATE_SHARD_MB = 32


def candidate_shard_rows(nphi: int) -> int:
    """Rows of candidate spectra per shard: CANDIDATE_FLUSH, fewer (whole chunks, one at least)
    where that many spectra of ``nphi`` depths exceed CANDIDATE_SHARD_MB."""
    fit = int(CANDIDATE_SHARD_MB * 1e6 // (8 * max(1, nphi))) // CANDIDATE_CHUNK * CANDIDATE_CHUNK
    return max(CANDIDATE_CHUNK, min(CANDIDATE_FLUSH, fit))


class _RowAppender:
    """Rows for growing Zarr arrays, gathered in one buffer per array and appended in whole shards
    of ``shard_rows``. The buffers are made once: gathering a shard's rows in a new array each time
    (np.concatenate) had 15% of the page faults of a synthesis-only pass on the diffuse benchmark
    field (18,000 of 123,000: glibc maps each new array above 4 MB afresh, see limit_heap_growth)."""

    def __init__(self, arrays: dict, shard_rows: int):
        self.arrays = arrays
        self.shard_rows = shard_rows
        self.buffers = {name: np.empty((shard_rows,) + array.shape[1:], array.dtype)
                        for name, array in arrays.items()}
        self.rows = 0

    def add(self, rows: dict[str, np.ndarray]) -> None:
        count = len(next(iter(rows.values())))
        done = 0
        while done < count:
            take = min(count - done, self.shard_rows - self.rows)
            for name, values in rows.items():
                self.buffers[name][self.rows:self.rows + take] = values[done:done + take]
            self.rows += take
            done += take
            if self.rows == self.shard_rows:
                self.flush()

    def flush(self) -> None:
        if self.rows:
            for name, array in self.arrays.items():
                array.append(self.buffers[name][:self.rows], axis=0)
        self.rows = 0


def faraday_store_names(products: FaradayProductsOptions, clean: bool) -> list[str]:
    """The stores faraday_depth writes for these options."""
    names = ["peaks", "candidates"]
    if products.save_fdf:
        names += ["fdf_dirty", "fdf_clean"] if clean else ["fdf_dirty"]
    return names


def peak_map_names(stokes_i: bool) -> list[str]:
    """The maps of the peak store: PEAK_MAPS, and STOKES_I_MAPS where the cube has Stokes I."""
    return list(PEAK_MAPS) + (list(STOKES_I_MAPS) if stokes_i else [])


def fits_product_names(cube_kinds: list[str], stokes_i: bool = False) -> list[str]:
    """The FITS products of export_faraday_fits for the FDF cubes ``cube_kinds`` exported (dirty,
    clean): their real, imaginary and amplitude parts, the RMSF table and every map of the peak store."""
    return [f"fdf_{kind}_{part}" for kind in cube_kinds for part in FDF_PARTS] + ["rmsf"] + peak_map_names(stokes_i)


def faraday_fits_names(products: FaradayProductsOptions, clean: bool, stokes_i: bool = False) -> list[str]:
    """fits_product_names for the config: FDF cubes only when they are kept and asked for as FITS."""
    exported = products.save_fdf and products.fdf_fits
    return fits_product_names((["dirty", "clean"] if clean else ["dirty"]) if exported else [], stokes_i)


def stokes_i_pixel_maps(i: np.ndarray, sigma_i: np.ndarray, freqs_hz: np.ndarray, reference_hz: float,
                        min_snr: float, synthesis_weights: np.ndarray, peak_pi: np.ndarray) -> np.ndarray:
    """STOKES_I_MAPS of a tile's pixels, i (nfreq, npix) with channel noise ``sigma_i``: a Stokes I
    model (kernels.stokes_i) for each pixel whose band-mean I reaches ``min_snr`` times its error,
    NaN elsewhere; fracpol from the debiased ``peak_pi``, which is P averaged over the band with
    the ``synthesis_weights``, taken to the reference frequency through the model. (4, npix)."""
    npix = i.shape[1]
    out = np.full((len(STOKES_I_MAPS), npix), np.nan, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(np.isfinite(sigma_i) & (sigma_i > 0), 1.0 / sigma_i**2, 0.0)
        present = np.isfinite(i)
        information = (weight[:, None] * present).sum(axis=0)
        mean = (weight[:, None] * np.where(present, i, 0.0)).sum(axis=0) / information
        bright = np.nonzero(mean * np.sqrt(information) >= min_snr)[0]
    if bright.size == 0:
        return out
    fitted = fit_stokes_i_pixels(freqs_hz, i[:, bright], sigma_i, reference_hz)
    with np.errstate(invalid="ignore", divide="ignore"):
        band_mean = synthesis_band_mean(synthesis_weights, band_shape(fitted["coefficients"], freqs_hz, reference_hz))
        modelled = fitted["order"] >= 0
        out[0, bright] = fitted["flux"]
        out[1, bright] = fitted["alpha"]
        out[2, bright] = np.where(modelled, fitted["order"], np.nan)
        out[3, bright] = peak_pi[bright] / band_mean / fitted["flux"]
    return out


@dataclasses.dataclass
class FaradayDepthResult:
    """The Faraday-depth stage's QA figures."""

    faraday_grid: dict
    weighting: str
    channels_used: int
    fdf_noise_theoretical: float
    from_fdf: str                 # "clean" or "dirty": which FDF the peaks were taken from
    clean: dict | None            # RM-CLEAN cutoff (Jy/beam and sigma), gain, iterations, components found
    candidate_snr: float
    candidates: int
    fdf_noise_median: float
    tiles: int
    tile_px: int
    region_px: int                # side of the regions of the cube read at once
    maps_region_px: int           # side of the regions the maps are gathered in
    maps: dict
    bytes: dict                   # bytes on disk of every store written

    QA_NAMES = {"from_fdf": "from"}


def open_fdf(store: str | os.PathLike, *, dask: bool = True):
    """An FDF, candidate or peak-map store as a lazy labelled xarray Dataset."""
    return open_dataset(store, "Faraday", dask=dask)


def synthesis_weights(rms_qu: np.ndarray, weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """(weights, sigma) of each channel: sigma the mean of its Q and U plane rms; weights
    1/sigma^2 ('variance') or 1 ('uniform'), 0 for channels without data."""
    rms = rms_qu.astype(np.float64)
    sigma = np.sqrt(0.5 * (rms[:, 0] ** 2 + rms[:, 1] ** 2))
    has_data = np.isfinite(sigma)
    if weighting == "variance" and np.any(sigma[has_data] <= 0):
        # Noise-free planes (a model column, a simulation without noise) have no variance to weight by.
        log.warning("%d channels have Q and U planes without noise; RM synthesis weights the channels uniformly",
                    int(np.sum(sigma[has_data] <= 0)))
        weighting = "uniform"
    if weighting == "variance":
        return np.where(has_data, 1.0 / np.where(has_data, sigma, 1.0) ** 2, 0.0), sigma
    if weighting == "uniform":
        return has_data.astype(np.float64), sigma
    raise ValueError(f"unknown RM synthesis weighting {weighting!r} (uniform or variance)")


def tile_bytes_per_pixel(nchan: int, nphi: int, clean: bool) -> int:
    """Memory one pixel of a tile takes in the one pass: per channel Q, U and I (float32), Q + iU
    (complex64) and its NaN mask, and P for the moments; per depth the dirty FDF (complex64) and,
    with RM-CLEAN, where every pixel is cleaned (diffuse emission), the residual as real and
    imaginary parts, the components, the clean FDF and the residual again as complex64, and |F| of a
    part at a time. (The exact peaks add 80 bytes per channel for REFINE_BATCH candidate pixels.)"""
    return 38 * nchan + 8 * nphi * (6 if clean else 2)


def faraday_tile_px(npix_y: int, npix_x: int, nchan: int, nphi: int, clean: bool, chunk_mb: float, threads: int,
                    align: int | None = None) -> int:
    """Side of the spatial tiles: about ``chunk_mb`` each, and small enough that every thread has
    two tiles to work on where the image allows (a single tile would leave the others idle)."""
    side = tile_side(npix_y, npix_x, tile_bytes_per_pixel(nchan, nphi, clean), chunk_mb, align=align)
    while side > 32 and (-(-npix_y // side)) * (-(-npix_x // side)) < 2 * threads:
        side //= 2
    return side


def faraday_region_px(tile_px: int, align: int | None, nchan: int, chunk_mb: float) -> int:
    """Side of the regions of the cube read at once: whole stored chunks (``align``) where the Q, U
    and I of a region take at most half of ``chunk_mb``, else the tile. A tile smaller than the stored
    chunk would otherwise decompress every chunk of its column for a fraction of it (16 times over
    for 32^2 tiles of 128^2 chunks: 0.2 s a tile, measured on a 256-channel cube)."""
    region = tile_px
    while align and region * 2 <= align and 12 * nchan * (2 * region) ** 2 <= chunk_mb * 1e6 / 2:
        region *= 2
    return region


def synthesis_matrix_mb(nchan: int, nphi: int) -> float:
    """Memory of the RM-synthesis matrix (nphi x nchan complex64) and of the double-precision block
    it is made in (MB): what any job that synthesises on the whole grid holds besides its data."""
    return (8 * nphi * nchan + 32 * min(MATRIX_ROWS_ELEMENTS, nphi * nchan)) / 1e6


def faraday_depth_mem_mb(nchan: int, nphi: int, tile_px: int, clean: bool, threads: int,
                         region_px: int | None = None, maps_region_px: int = 1024) -> int:
    """Memory to request for a faraday_depth job (MB): one tile per thread, with a quarter more for
    what a finished tile hands back and the stored chunks read for the next, the regions of Q, U
    and I held for the tiles (one per thread, one more, and the next one read ahead), the maps gathered before they are
    written (25 float32 maps of ``maps_region_px``, see map_region_px), what zarr holds while it
    decodes the cube (io.stores.DECODE_MB), the synthesis matrix (nphi x nchan complex64, and a block
    of its making), the candidates' spectra gathered for a shard (and zarr's copy of it), and 250 MB
    for the interpreter with numpy, numba, dask, zarr and xarray and the maps read back for their QA
    figures. Measured on a 1024^2 cube (tests/test_faraday_cube.py) and at 256 and 1,024 channels
    (benchmarks/scale.py: the matrix, 41 MB and a 134 MB block in the making at 1,024 channels x
    5,031 depths, had been left out, and that job peaked at 976 MB against 809)."""
    # per thread: the tile, the exact peaks' batch and the synthesis route's buffers (the FFT's or
    # the symmetric product's, whichever is larger: a pass takes one)
    tile_mb = (tile_px * tile_px * tile_bytes_per_pixel(nchan, nphi, clean) + 80 * nchan * REFINE_BATCH
               + max(fourier_scratch_bytes(nphi), symmetric_scratch_bytes(nphi))) / 1e6
    region_mb = 12 * nchan * (region_px or tile_px) ** 2 / 1e6
    maps_mb = (len(PEAK_MAPS) + 16) * 4 * maps_region_px**2 / 1e6
    matrix_mb = synthesis_matrix_mb(nchan, nphi)
    candidates_mb = 2 * (3 if clean else 1) * 8 * nphi * candidate_shard_rows(nphi) / 1e6
    return int(250 + 1.25 * tile_mb * threads + region_mb * (threads + 2) + maps_mb + DECODE_MB + matrix_mb
               + candidates_mb)


MAP_REGION_PX = 1024  # side of the regions in which the maps are gathered and written (and their stored chunks)


def map_region_px(region_px: int, npix_y: int, npix_x: int) -> int:
    """Side of the regions the maps are gathered in before they are written: a multiple of the read
    region up to MAP_REGION_PX (25 maps, float32: 100 MB at most), so that a 512^2 field writes each
    map once (a write per map and 120^2 tile cost 0.4 s of a 2.5 s pass) and a large one in chunks
    of 4 MB."""
    side = region_px
    while side * 2 <= MAP_REGION_PX and side < max(npix_y, npix_x):
        side *= 2
    return side


def _tiles(npix_y: int, npix_x: int, side: int, *regions: int) -> list[tuple[slice, slice]]:
    """The tiles of ``side`` pixels, ordered so that those of one region come one after another, at
    each of the nested ``regions`` (largest first, each a multiple of the next and of ``side``)."""
    spans = [(0, npix_y, 0, npix_x)]
    for size in list(regions) + [side]:
        spans = [(y, min(y + size, y1), x, min(x + size, x1)) for y0, y1, x0, x1 in spans
                 for y in range(y0, y1, size) for x in range(x0, x1, size)]
    return [(slice(y0, y1), slice(x0, x1)) for y0, y1, x0, x1 in spans]


class _RegionReader:
    """Q and U (and I) of tiles, read a region of whole stored chunks at a time (``read(ys, xs)``)
    and kept for the region's other tiles (the tiles come region by region, in ``order``). Threads
    asking for the same region wait for one read; the ``keep`` regions used last are held. When a
    region is first asked for, the next one is read in a thread of its own, so that the tile
    threads do not wait for the cube between regions (13 -> 11 s on a 256-channel 512^2 cube)."""

    def __init__(self, read, region: int, keep: int, order: list[tuple[int, int]] | None = None):
        self._read, self._region, self._keep, self._order = read, region, keep, list(order or [])
        self._start()

    def __getstate__(self) -> dict:
        # sent to a distributed worker without its locks and regions; it reads its own
        return {"read": self._read, "region": self._region, "keep": self._keep, "order": self._order}

    def __setstate__(self, state: dict) -> None:
        self._read, self._region, self._keep = state["read"], state["region"], state["keep"]
        self._order = state["order"]
        self._start()

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._reading: dict[tuple[int, int], threading.Lock] = {}
        self._regions: OrderedDict[tuple[int, int], tuple[int, int, list[np.ndarray]]] = OrderedDict()
        self._next = {key: after for key, after in zip(self._order, self._order[1:])}
        self._started: set[tuple[int, int]] = set()

    def _held(self, key: tuple[int, int]) -> tuple[int, int, list[np.ndarray]]:
        with self._lock:
            reading = self._reading.setdefault(key, threading.Lock())
            self._started.add(key)
        with reading:
            with self._lock:
                held = self._regions.get(key)
            if held is None:
                y0, x0 = key[0] * self._region, key[1] * self._region
                planes = self._read(slice(y0, y0 + self._region), slice(x0, x0 + self._region))
                held = (y0, x0, planes)
                with self._lock:
                    self._regions[key] = held
                    while len(self._regions) > self._keep:
                        self._regions.popitem(last=False)
                    self._reading.pop(key, None)
        return held

    def tile(self, ys: slice, xs: slice, out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The planes of a tile, (nchan, ny, nx) each; with ``out`` (one flat float32 buffer per
        plane, large enough) copied into the buffers' first elements, which the arrays are views of."""
        key = (ys.start // self._region, xs.start // self._region)
        following = self._next.get(key)
        if following is not None:
            with self._lock:
                fetch = following not in self._started
                self._started.add(following)
            if fetch:
                threading.Thread(target=self._held, args=(following,), daemon=True).start()
        y0, x0, planes = self._held(key)
        views = [p[:, ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0] for p in planes]
        if out is None:
            return [np.ascontiguousarray(v, dtype=np.float32) for v in views]  # native byte order
        tiles = []
        for view, buffer in zip(views, out):
            tile = buffer[:view.size].reshape(view.shape)
            tile[...] = view
            tiles.append(tile)
        return tiles


class _RegionMaps:
    """Maps of tiles gathered a region at a time and handed to ``write(region, maps)`` when the
    region is whole: one write per region instead of per tile (nine maps, 2,304 writes of 32^2
    tiles on a 512^2 field, took 3.8 s of 35). ``maps`` is (count, region y, region x)."""

    def __init__(self, write, count: int, npix_y: int, npix_x: int, region: int):
        self._write, self._count, self._shape, self._region = write, count, (npix_y, npix_x), region
        self._open: dict[tuple[int, int], list] = {}

    def add(self, ys: slice, xs: slice, maps: np.ndarray) -> None:
        r = self._region
        key = (ys.start // r, xs.start // r)
        if key not in self._open:
            y0, x0 = key[0] * r, key[1] * r
            region = (slice(y0, min(y0 + r, self._shape[0])), slice(x0, min(x0 + r, self._shape[1])))
            buffer = np.full((self._count, region[0].stop - y0, region[1].stop - x0), np.nan, np.float32)
            self._open[key] = [region, buffer, buffer[0].size]
        region, buffer, missing = self._open[key]
        buffer[:, ys.start - region[0].start:ys.stop - region[0].start,
               xs.start - region[1].start:xs.stop - region[1].start] = maps
        missing -= maps[0].size
        self._open[key][2] = missing
        if missing == 0:
            self._write(region, buffer)
            del self._open[key]

    def close(self) -> None:
        if self._open:
            raise RuntimeError(f"faraday_depth: {len(self._open)} regions of the maps were not completed")


def candidate_box_px(beam_px: float) -> int:
    """Side (odd, >= 3 pixels) of the neighbourhood in which a candidate is the brightest pixel: about
    the restoring beam, so that one source (or one top of diffuse emission) gives one candidate."""
    if not np.isfinite(beam_px) or beam_px < 3:
        return 3
    return int(2 * (int(beam_px) // 2) + 1)


def faraday_depth(source: str | os.PathLike | StokesSource, out: dict[str, str | os.PathLike],
                  qa_path: str | os.PathLike, synthesis: RMSynthesisOptions = RMSynthesisOptions(),
                  clean: RMCleanOptions | None = RMCleanOptions(),
                  products: FaradayProductsOptions = FaradayProductsOptions(), dask: DaskOptions = DaskOptions(), *,
                  moments: MomentsOptions | None = None, moments_out: str | os.PathLike | None = None,
                  moments_qa: str | os.PathLike | None = None, rule: str = "spectropol") -> FaradayDepthResult:
    """RM synthesis, RM-CLEAN (unless ``clean`` is None) and the FDF peaks of Q and U, in one pass
    over spatial tiles; ``source`` is a cube store or the StokesSource of FITS files
    (io.polarisation.stokes_from_fits), and ``out`` maps each of faraday_store_names to a store.
    With ``moments``, the same pass also reads Stokes I and writes the Faraday moments (and their QA
    document) to ``moments_out`` (``moments_qa``): the cube is read once for both.

    peaks: the PEAK_MAPS, the RMSF on twice the phi range, the channel weights and the grid.
    candidates: per pixel at a local maximum of peak PI (within about a beam) whose FDF peak reaches
    ``candidate_snr`` (its peak refined exactly from Q and U): y, x, snr and the dirty FDF, with
    RM-CLEAN also the clean FDF and the components.
    fdf_dirty, fdf_clean (save_fdf): the full cubes, as a user of RM-Tools' 3-D products expects.
    """
    import dask as dask_module
    import zarr

    expected = set(faraday_store_names(products, clean is not None))
    if set(out) != expected:
        raise ValueError(f"faraday_depth writes {sorted(expected)}, was given {sorted(out)}")
    if moments is not None and (moments_out is None or moments_qa is None):
        raise ValueError("faraday_depth: moments need moments_out and moments_qa")
    # RM-CLEAN's and the moments' compiled loops load while the input is opened; numba is not
    # imported at all where neither runs (0.3 s of a 2 s synthesis-only process)
    compiled = (("hogbom_rows",) if clean is not None else ()) + (("moments_rows",) if moments is not None else ())
    if compiled:
        from ..kernels.faraday_loops import warm_up

        warm_up(*compiled)
    stokes = source if isinstance(source, StokesSource) else stokes_from_cube(source)
    if stokes.chunk:
        batch_codecs(4 * stokes.chunk**2)
    freqs = stokes.freqs_hz
    weights, sigma = synthesis_weights(np.column_stack([stokes.rms["Q"], stokes.rms["U"]]), synthesis.weighting)
    try:
        grid = faraday_grid(freqs, weights, dphi=synthesis.dphi_rad_m2, phi_max=synthesis.phi_max_rad_m2,
                            oversample=synthesis.oversample)
    except ValueError as err:
        raise fail(stokes.name, str(err)) from None
    nphi, nfreq = len(grid.phi), len(freqs)
    ny, nx = stokes.shape
    with_i = moments is not None and "I" in stokes.stokes
    map_names = peak_map_names(with_i)
    map_units = PEAK_MAPS | STOKES_I_MAPS
    reference_hz = float(SPEED_OF_LIGHT / np.sqrt(grid.lambda0_sq))
    side = faraday_tile_px(ny, nx, nfreq, nphi, clean is not None, synthesis.chunk_mb, dask.threads,
                           align=stokes.chunk)
    region = faraday_region_px(side, stokes.chunk, nfreq, synthesis.chunk_mb)
    maps_region = map_region_px(region, ny, nx)
    tiles = _tiles(ny, nx, side, maps_region, region)
    noise = fdf_noise_theoretical(grid, sigma)
    cutoff = None if clean is None else clean.cutoff_sigma * noise
    clean_mask = None if clean is None or not clean.mask_sigma else clean.mask_sigma * noise
    matrix = synthesis_operator(grid)
    if isinstance(matrix, FourierSynthesis):
        log.info("RM synthesis by a non-uniform FFT: %d channels spread onto %d of %d lambda^2 cells", nfreq,
                 matrix.band, matrix.fft_length)
    elif isinstance(matrix, SymmetricSynthesis):
        log.info("RM synthesis by two real products of the %d depths >= 0 (the grid is symmetric about 0)",
                 matrix.nphi - matrix.nphi // 2)
    phi_rmsf = doubled_phi(grid)
    rmsf_doubled = rmsf(grid, phi_rmsf).astype(np.complex64)
    restore = restoring_function(grid)
    box = candidate_box_px(stokes.beam_px)
    if moments is not None:
        rms_iqu = np.column_stack([stokes.rms.get(s, np.full(nfreq, np.nan)) for s in ("I", "Q", "U")])
        moment_weights = channel_weights(rms_iqu, moments.weighting)
    save = products.save_fdf
    log.info("Faraday depth: %d channels -> %d depths (%.3g..%.3g rad/m2, step %.3g), RMSF FWHM %.3g rad/m2; "
             "%d tiles of %d^2 pixels read %d^2 at a time; RM-CLEAN %s; candidates the brightest pixel within "
             "%d^2 reaching SNR %g%s", nfreq, nphi, grid.phi[0], grid.phi[-1], grid.dphi, grid.fwhm, len(tiles), side,
             region, "off" if clean is None else f"to {cutoff:.3g} Jy/beam ({clean.cutoff_sigma:g} sigma) where the "
             f"dirty peak reaches {clean.mask_sigma:g} sigma", box, products.candidate_snr,
             "; Faraday moments in the same pass" if moments is not None else "")
    if save:
        cubes = 1 if clean is None else 3
        log.info("save_fdf: writing %d FDF cube(s) of %d x %d x %d complex64, %.3g GB in all", cubes, nphi, ny, nx,
                 cubes * 8.0 * nphi * ny * nx / 1e9)

    read = stokes.regions(("Q", "U", "I") if with_i else ("Q", "U"))
    order = list(dict.fromkeys((ys.start // region, xs.start // region) for ys, xs in tiles))
    reader = _RegionReader(read, region, keep=dask.threads + 2, order=order)

    # Each thread's working arrays (kernels.faraday.Scratch), used tile after tile: the tile's planes,
    # Q + iU, the dirty FDF and RM-CLEAN's. A plain dict, freed with the stage, and one that pickles
    # for a distributed worker (which then makes its own).
    buffers: dict[int, Scratch] = {}
    read_stokes = 3 if with_i else 2

    def tile_pass(ys, xs):
        scratch = buffers.get(threading.get_ident())
        if scratch is None:
            scratch = buffers[threading.get_ident()] = Scratch()
        planes = reader.tile(ys, xs, out=list(scratch.empty("planes", (read_stokes, nfreq * side * side), np.float32)))
        q, u = (p.reshape(nfreq, -1) for p in planes[:2])
        shape = planes[0].shape[1:]
        block = faraday_depth_block(q, u, grid, noise, clean_cutoff=cutoff,
                                    clean_gain=clean.gain if clean else 0.1,
                                    clean_max_iter=clean.max_iter if clean else 0, clean_mask=clean_mask,
                                    candidate_snr=products.candidate_snr, matrix=matrix, rmsf_doubled=rmsf_doubled,
                                    restore=restore, shape=shape, candidate_box=box, scratch=scratch)
        maps = [np.asarray(block.peaks[name], dtype=np.float32) for name in PEAK_MAPS]
        moment_maps = None
        if moments is not None:
            i = planes[2].reshape(nfreq, -1) if with_i else None
            moment_maps = moments_block(i, q, u, *moment_weights).reshape((-1,) + shape)
            if with_i:
                maps += list(stokes_i_pixel_maps(i, stokes.rms["I"], freqs, reference_hz, products.stokes_i_snr,
                                                 weights, block.peaks["peak_pi_debiased"]))
        maps = np.stack(maps)
        kept = block.candidates
        spectra = block.spectra(kept)
        full = None
        if save:
            def along_phi(rows):
                return np.ascontiguousarray(rows.T).reshape((nphi,) + shape)

            full = {"fdf": along_phi(block.dirty)}
            if block.cleaned is not None:
                full |= {"fdf_clean": along_phi(block.cleaned.full(block.dirty, "clean")),
                         "clean_components": along_phi(block.cleaned.full(block.dirty, "components"))}
        return maps.reshape((len(map_names),) + shape), moment_maps, kept, spectra, full, block.components_found()

    def write_axes(builder, with_rmsf: bool = True) -> None:
        """The Faraday-depth axis, and the RMSF on twice its range, of a store of the stage."""
        builder.array("phi", ("phi",), grid.phi.shape, np.float64, attrs={"units": "rad/m2"}, data=grid.phi)
        if with_rmsf:
            builder.array("phi_rmsf", ("phi_rmsf",), phi_rmsf.shape, np.float64, attrs={"units": "rad/m2"},
                          data=phi_rmsf)
            builder.array("rmsf", ("phi_rmsf",), rmsf_doubled.shape, np.complex64, data=rmsf_doubled,
                          attrs={"description": "RMSF on twice the phi range"})

    inputs = {"stokes": stokes.name}
    attrs = {"wcs": stokes.wcs, "faraday_grid": grid.describe(), "channel_weights": weights.tolist(),
             "freqs_hz": freqs.tolist(), "weighting": synthesis.weighting, "fdf_noise_theoretical": noise,
             "source": "dirty" if clean is None else "clean", "peak": "exact", "candidate_snr": products.candidate_snr,
             "candidate_box_px": box, "lambda0_sq": grid.lambda0_sq,
             "clean": None if clean is None else {"cutoff": cutoff, "cutoff_sigma": clean.cutoff_sigma,
                                                  "mask": clean_mask, "mask_sigma": clean.mask_sigma,
                                                  "gain": clean.gain, "max_iter": clean.max_iter},
             "provenance": provenance(inputs)}
    components_total = pixels_cleaned = 0
    candidates_total = 0
    with contextlib.ExitStack() as stack:
        peaks = stack.enter_context(build_store(out["peaks"], attrs))
        write_axes(peaks)
        peaks.array("freq", ("freq",), freqs.shape, np.float64, attrs={"units": "Hz"}, data=freqs)
        peaks.array("channel_weight", ("freq",), weights.shape, np.float64, data=weights,
                    attrs={"description": "RM synthesis weight of each channel"})
        maps_out = {name: peaks.array(name, ("y", "x"), (ny, nx), np.float32, chunks=(maps_region, maps_region),
                                      attrs={"units": map_units[name][0], "description": map_units[name][1]})
                    for name in map_names}

        def write_peak_maps(where, buffer):
            for k, name in enumerate(map_names):
                maps_out[name][where] = buffer[k]

        map_writer = _RegionMaps(write_peak_maps, len(map_names), ny, nx, maps_region)
        moments_writer = None
        if moments is not None:
            moment_store = stack.enter_context(build_store(moments_out, moments_attrs(stokes.wcs, moments, nfreq,
                                                                                      inputs)))
            moment_store.array("quantity", ("quantity",), (len(QUANTITIES),), "<U1", data=np.array(QUANTITIES))
            moment_store.array("moment", ("moment",), (len(MOMENTS),), "<U8", data=np.array(MOMENTS))
            moments_array = moment_store.array("moments", ("quantity", "moment", "y", "x"),
                                               (len(QUANTITIES), len(MOMENTS), ny, nx), np.float32,
                                               chunks=(1, 1, maps_region, maps_region), attrs=MOMENTS_VARIABLE)

            def write_moments(where, buffer):
                moments_array[(slice(None), slice(None)) + where] = buffer.reshape(
                    (len(QUANTITIES), len(MOMENTS)) + buffer.shape[1:])

            moments_writer = _RegionMaps(write_moments, len(QUANTITIES) * len(MOMENTS), ny, nx, maps_region)
        candidates = stack.enter_context(build_store(out["candidates"], attrs | {"kind": "candidates"}))
        write_axes(candidates, with_rmsf=False)
        shard_rows = candidate_shard_rows(nphi)
        spectra_out = {
            name: candidates.array(name, ("pixel", "phi"), (0, nphi), np.complex64, chunks=(CANDIDATE_CHUNK, nphi),
                                   shards=(shard_rows, nphi),
                                   attrs={"units": "Jy/beam", "description": text}, raw=name != "clean_components")
            for name, text in (("fdf_dirty", "dirty FDF"), ("fdf_clean", "RM-CLEAN restored FDF"),
                               ("clean_components", "clean components"))
            if clean is not None or name == "fdf_dirty"}
        index_out = {name: candidates.array(name, ("pixel",), (0,), dtype, chunks=(shard_rows,),
                                            attrs={"description": text})
                     for name, dtype, text in (("y", np.int32, "pixel row"), ("x", np.int32, "pixel column"),
                                               ("snr", np.float32, "FDF peak SNR"))}
        appender = _RowAppender(spectra_out | index_out, shard_rows)
        cubes_out = {}
        if save:
            for store_name, variables in (("fdf_dirty", {"fdf": "dirty Faraday dispersion function"}),
                                          ("fdf_clean", {"fdf_clean": "RM-CLEAN restored FDF",
                                                         "clean_components": "clean components"})):
                if store_name not in out:
                    continue
                builder = stack.enter_context(build_store(out[store_name], attrs | {"kind": store_name[4:]}))
                write_axes(builder)
                for name, text in variables.items():
                    # FDF cubes are noise-like complex floats: compression would cost write time and
                    # save little; the components, mostly zeros, keep the default compressor.
                    cubes_out[name] = builder.array(name, ("phi", "y", "x"), (nphi, ny, nx), np.complex64,
                                                    chunks=(nphi, side, side), raw=name != "clean_components",
                                                    attrs={"units": "Jy/beam", "description": text})
        limit_heap_growth()
        per_batch = dask.threads * (1 if save else 4)
        batches = [tiles[first:first + per_batch] for first in range(0, len(tiles), per_batch)]

        def compute(batch):
            return dask_module.compute(*[dask_module.delayed(tile_pass)(ys, xs) for ys, xs in batch])

        # Each Dask thread runs its tile's matrix product: BLAS threads of their own would only
        # oversubscribe the cores (2.8 s against 3.3 s for a 512^2 x 64-channel pass on 2 cores).
        with dask_scheduler(dask.scheduler, dask.threads, "faraday_depth"), ThreadPoolExecutor(1) as ahead, \
                threadpool_limits(1, user_api="blas"):
            # A few tiles at a time (one per thread), the next batch computing while this one's maps
            # and spectra are written: memory stays that of (threads) tiles however large the field.
            if compiled:
                from ..kernels.faraday_loops import wait_warm

                wait_warm()
            pending = ahead.submit(compute, batches[0])
            for number, batch in enumerate(batches):
                done = pending.result()
                if number + 1 < len(batches):
                    pending = ahead.submit(compute, batches[number + 1])
                for (ys, xs), (maps, moment_maps, kept, spectra, full, found) in zip(batch, done):
                    map_writer.add(ys, xs, maps)
                    if moments_writer is not None:
                        moments_writer.add(ys, xs, moment_maps)
                    if kept.size:
                        width = xs.stop - xs.start
                        appender.add(spectra | {"y": (ys.start + kept // width).astype(np.int32),
                                                "x": (xs.start + kept % width).astype(np.int32),
                                                "snr": maps[list(PEAK_MAPS).index("snr")].reshape(-1)[kept]})
                    for name, values in (full or {}).items():
                        cubes_out[name][:, ys, xs] = values
                    components_total += found[0]
                    pixels_cleaned += found[1]
                    candidates_total += int(kept.size)
                log.info("faraday_depth: %d of %d tiles written, %d candidate pixels",
                         sum(len(b) for b in batches[:number + 1]), len(tiles), candidates_total)
            appender.flush()
            map_writer.close()
            if moments_writer is not None:
                moments_writer.close()
    with quiet_zarr_v3(), ThreadPoolExecutor(max(1, dask.threads)) as pool:
        # a map per thread in memory, read with zarr alone (the medians release the GIL)
        stored = zarr.open_group(str(out["peaks"]), mode="r")
        map_statistics = dict(zip(map_names, pool.map(lambda name: image_statistics(stored[name][...]), map_names)))
    noise_median = map_statistics["fdf_noise"]["median"]
    clean_summary = None if clean is None else attrs["clean"] | {"components": components_total,
                                                              "pixels_cleaned": pixels_cleaned}
    result = FaradayDepthResult(
        faraday_grid=grid.describe(), weighting=synthesis.weighting, channels_used=int((weights > 0).sum()),
        fdf_noise_theoretical=noise, from_fdf="dirty" if clean is None else "clean", clean=clean_summary,
        candidate_snr=products.candidate_snr, candidates=candidates_total,
        fdf_noise_median=noise_median, tiles=len(tiles), tile_px=side, region_px=region, maps_region_px=maps_region,
        maps=map_statistics,
        bytes={name: store_bytes(path) for name, path in out.items()})
    log.info("Faraday depth: %d candidate pixels (SNR >= %g); stores %s", candidates_total, products.candidate_snr,
             ", ".join(f"{name} {size / 1e6:.3g} MB" for name, size in result.bytes.items()))
    if moments is not None:
        write_qa(moments_qa, "moments", summarise_moments(moments_out, moments, nfreq), rule)
    write_qa(qa_path, "faraday_depth", result, rule)
    return result


def candidate_spectrum(candidates, y: float, x: float, variable: str = "fdf_dirty",
                       within_px: float = 0.0) -> np.ndarray | None:
    """The FDF ``variable`` of the candidate pixel nearest (y, x) from a candidate store (an xarray
    Dataset or a zarr group), or None if none lies within ``within_px`` (0: the pixel itself) or the
    store lacks the variable."""
    if variable not in candidates:
        return None
    nearest = nearest_candidate(candidates, y, x, within_px)
    return None if nearest is None else np.asarray(candidates[variable][nearest])


def nearest_candidate(candidates, y: float, x: float, within_px: float = 0.0) -> int | None:
    """The index of the candidate pixel nearest (y, x) in a candidate store, or None if none lies
    within ``within_px`` (0: the pixel itself)."""
    ys, xs = (np.asarray(candidates[name][...]) for name in ("y", "x"))
    if not ys.size:
        return None
    distance = np.hypot(ys - y, xs - x)
    nearest = int(np.argmin(distance))
    return None if distance[nearest] > max(within_px, 0.5) else nearest


def export_faraday_fits(peaks_store: str | os.PathLike, out_paths: dict[str, str | os.PathLike], *,
                        dirty_store: str | os.PathLike | None = None,
                        clean_store: str | os.PathLike | None = None) -> None:
    """FITS products: the RMSF as a table, the peak maps as 2-D images and, given the stores of the
    full FDF cubes, their real, imaginary and amplitude parts (RA, DEC, FARDEPTH), a tile at a time.
    ``out_paths`` maps every name of faraday_fits_names to a file (a missing or unknown name is an
    error, so that no product goes unexported)."""
    from astropy.io import fits

    peaks = open_store(peaks_store, "Faraday peak")  # zarr alone: xarray and dask.array cost 0.7 s
    sources = {}
    if dirty_store is not None:
        sources["dirty"] = (open_fdf(dirty_store), "fdf")
    if clean_store is not None:
        sources["clean"] = (open_fdf(clean_store), "fdf_clean")
    stokes_i = "stokes_i_model" in peaks
    expected = set(fits_product_names(list(sources), stokes_i))
    if set(out_paths) != expected:
        raise ValueError(f"FITS paths missing for {sorted(expected - set(out_paths))}, "
                         f"unknown products {sorted(set(out_paths) - expected)}")
    phi = np.asarray(peaks["phi"][...])
    for kind, (store, variable) in sources.items():
        for part, function in FDF_PARTS.items():
            keywords = {"SIMPLE": True, "BITPIX": -32, "NAXIS": 3, "NAXIS1": store.sizes["x"],
                        "NAXIS2": store.sizes["y"],
                        "NAXIS3": len(phi)} | store.attrs["wcs"] | fardepth_axis(3, phi)
            keywords |= product_keywords("Jy/beam", f"FDF {kind} {part}", store.attrs["provenance"])
            write_cube_by_tiles(out_paths[f"fdf_{kind}_{part}"], keywords, store[variable], function)
    values = np.asarray(peaks["rmsf"][...])
    table = fits.BinTableHDU.from_columns([
        fits.Column("PHI", "1D", "rad/m2", array=np.asarray(peaks["phi_rmsf"][...])),
        fits.Column("REAL", "1E", array=values.real), fits.Column("IMAG", "1E", array=values.imag),
        fits.Column("AMPLITUDE", "1E", array=np.abs(values)),
    ], name="RMSF")
    table.header["FWHM"] = (peaks.attrs["faraday_grid"]["rmsf_fwhm"], "rad/m2")
    with atomic_path(out_paths["rmsf"]) as partial:
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(partial)
    for name in peak_map_names(stokes_i):
        write_map(out_paths[name], np.asarray(peaks[name][...]), peaks.attrs["wcs"], bunit=peaks[name].attrs["units"],
                  btype=name, provenance=peaks.attrs["provenance"])
