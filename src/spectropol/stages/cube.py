"""The cube stage: channel images gathered into one labelled Zarr cube (freq, stokes, y, x), and
FITS cubes for DS9, CARTA and astropy.

The cube is chunked (1, 1, chunk, chunk): each channel is written once, without touching the
others, and a reader that wants the whole spectral axis of a spatial tile (moments, RM synthesis)
reads one column of chunks. Memory is one channel image, whatever the number of channels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..constants import STOKES
from ..errors import fail
from ..io.channels import read_channel_attrs, read_channel_image
from ..io.cube import cube_shard
from ..io.fits import write_planes
from ..io.stores import atomic_path, batch_codecs, open_store, provenance, quiet_zarr_v3, updating
from ..io.wcs import beam_keywords, spectral_axis, stokes_axis
from ..kernels.beam import common_beam as find_common_beam
from ..kernels.beam import convolve_to_beam
from ..kernels.statistics import mad_rms
from ..options import CubeOptions
from ..qa.documents import write_qa

log = logging.getLogger(__name__)


@dataclasses.dataclass
class CubeResult:
    """The cube stage's QA figures."""

    channels: int
    freq_min_hz: float
    freq_max_hz: float
    flagged_channels: list[int]
    excluded_channels: list[int]
    rms_median: dict
    beam_bmaj_deg_range: list[float] | None
    diverged_channels: list[int]
    planes_written: int = 0


@dataclasses.dataclass
class _ChannelTables:
    """The per-channel arrays of a cube beside its image planes."""

    freqs: np.ndarray
    channels: np.ndarray
    beams: np.ndarray  # (nchan, 3): bmaj, bmin, bpa in deg
    rms: np.ndarray    # (nchan, nstokes) Jy/beam
    diverged: np.ndarray  # (nchan,) bool: the channel's CLEAN diverged and stopped at its best model


def _nan_beam(beam: dict) -> dict:
    return {k: np.nan if v is None else v for k, v in beam.items()}


def _planes_of(attrs: list[dict], spectral_window, cube_store) -> tuple[list[int], int]:
    """The cube plane of each channel store, and the number of planes."""
    if spectral_window is None:
        return list(range(len(attrs))), len(attrs)
    nchan = len(spectral_window)
    planes = [int(a["channel"]) for a in attrs]
    if len(set(planes)) != len(planes) or not all(0 <= p < nchan for p in planes):
        raise fail(cube_store, f"channel image stores do not map one to one onto the {nchan} channels")
    return planes, nchan


def _input_paths(attrs: list[dict], planes_of: list[int], sources: np.ndarray) -> list[str]:
    """The MS path of each input index, as the channel stores of its channels name it."""
    paths: dict[int, str] = {}
    for a, p in zip(attrs, planes_of):
        if p < len(sources):
            paths.setdefault(int(sources[p, 0]), str((a.get("source") or {}).get("ms") or a.get("ms", "")))
    return [paths.get(k, "") for k in range(int(sources[:, 0].max()) + 1)] if len(sources) else []


def _open_for_update(cube_store: str | os.PathLike, layout: dict):
    """The existing cube's group if it is complete and laid out as ``layout`` says, else None."""
    import zarr

    if not os.path.isdir(cube_store):
        return None
    try:
        with quiet_zarr_v3():
            group = zarr.open_group(cube_store, mode="r+", zarr_format=3)
            attrs = dict(group.attrs)
    except (FileNotFoundError, KeyError, ValueError):
        return None
    # An update cut short leaves complete false (or, where Snakemake put back the zarr.json of before,
    # the UPDATING mark with the earlier plane ids): either way the planes whose ids differ are written.
    if attrs.get("complete") is None or attrs.get("layout") != json.loads(json.dumps(layout)):
        return None
    return group


def _fill_planes(array, tables: _ChannelTables, planes_to_write, image: str, npix: int, target, cell_rad) -> None:
    """Copy each (plane, store) of ``planes_to_write`` into the cube array and its channel tables,
    convolving to the common beam ``target`` when there is one."""
    for p, store in planes_to_write:
        planes, store_attrs = read_channel_image(store, image)
        if planes.shape[-2:] != (npix, npix):
            raise fail(store,
                       f"image size {planes.shape[-2]}x{planes.shape[-1]} differs from the first channel's "
                       f"{npix}x{npix}")
        beam = _nan_beam(store_attrs["beam"])
        if target is not None and np.isfinite(beam["bmaj_deg"]):
            planes = convolve_to_beam(planes, beam, target, cell_rad)
            beam = target
        array[p] = planes
        tables.freqs[p] = store_attrs["freq_hz"]
        tables.channels[p] = store_attrs["channel"]
        tables.beams[p] = [beam["bmaj_deg"], beam["bmin_deg"], beam["bpa_deg"]]
        tables.rms[p] = [mad_rms(plane) for plane in planes]
        tables.diverged[p] = bool(store_attrs.get("clean_diverged", False))


def gather_cube(image_stores: Sequence[str | os.PathLike], cube_store: str | os.PathLike, qa_path: str | os.PathLike,
                options: CubeOptions = CubeOptions(), *, spectral_window: Sequence[float] | None = None,
                sources: Sequence[Sequence[int]] | None = None, update: bool = False,
                rule: str = "spectropol") -> CubeResult:
    """Write the ``options.image`` planes of each channel store into one cube store.

    Without ``spectral_window`` the cube has one plane per store, in the given order. With it (the
    frequencies of every channel of the spectral window) the cube has one plane per channel and
    each store goes to the plane of its channel number; channels without a store (excluded) are NaN
    planes, listed in the attributes.

    The cube carries per-channel beams (bmaj, bmin, bpa in deg) and the MAD rms of each plane
    (``rms``, Jy/beam), which later stages use as channel noise. With ``common_beam`` every channel
    is first convolved to one beam that contains all of theirs (needed for RM synthesis of resolved
    emission across a wide band); the cube's beams are then all that beam.

    ``sources`` (ms index, spw, channel there) of every plane are the channels' identity, kept as
    the cube's ``source_*`` variables; the MS of each index, as the channel stores name it (where
    it is now), is the ``inputs`` attribute.

    With ``update``, an existing complete cube of the same layout (planes, image kind, chunks,
    WCS, common beam, sources) is updated in place: only planes whose channel store is not the one
    it was made from are rewritten. Otherwise the cube is written whole, under a temporary name.
    """
    image = options.image
    attrs = [read_channel_attrs(store) for store in image_stores]
    first_attrs = attrs[0]
    planes_of, nchan = _planes_of(attrs, spectral_window, cube_store)
    target = None
    if options.common_beam:
        target = find_common_beam([_nan_beam(a["beam"]) for a in attrs])
        log.info("common beam %.2f x %.2f arcsec, pa %.1f deg", target["bmaj_deg"] * 3600, target["bmin_deg"] * 3600,
                 target["bpa_deg"])
    cell_rad = first_attrs["imaging"]["cell_rad"]
    npix = first_attrs["imaging"]["npix"]
    chunk = min(options.chunk_px, npix)
    stored = set(planes_of)
    excluded = [p for p in range(nchan) if p not in stored]
    sources = np.asarray(sources if sources is not None else [(0, 0, p) for p in range(nchan)], dtype=np.int32)
    inputs = _input_paths(attrs, planes_of, sources)
    if sources.shape != (nchan, 3):
        raise fail(cube_store, f"{len(sources)} channel sources given for {nchan} channels")
    layout = {"nchan": nchan, "npix": npix, "image": image, "chunk": chunk, "shard": options.shard,
              "wcs": first_attrs["wcs"],
              "common_beam": target, "excluded": excluded,
              "sources": hashlib.blake2b(sources.tobytes(), digest_size=16).hexdigest()}
    plane_ids = [None] * nchan
    for p, a in zip(planes_of, attrs):
        plane_ids[p] = a["provenance"].get("product_id")

    existing = _open_for_update(cube_store, layout) if update else None
    if existing is None:
        tables = _ChannelTables(
            freqs=np.array(spectral_window, dtype=np.float64) if spectral_window is not None else np.full(nchan,
                                                                                                          np.nan),
            channels=np.arange(nchan, dtype=np.int32), beams=np.full((nchan, 3), np.nan),
            rms=np.full((nchan, len(STOKES)), np.nan, dtype=np.float32), diverged=np.zeros(nchan, dtype=bool))
        to_write = list(zip(planes_of, image_stores))
        with atomic_path(cube_store) as partial:
            array = create_cube_array(partial, image, nchan, npix, chunk, shard=options.shard)
            for p in excluded:
                array[p] = np.nan
            _fill_planes(array, tables, to_write, image, npix, target, cell_rad)
            result = _finish_cube(partial, image, tables, plane_ids, layout, first_attrs, image_stores, new=True,
                                  sources=sources, inputs=[str(i) for i in inputs])
    else:
        import zarr

        old_ids = existing.attrs["plane_ids"]
        to_write = [(p, store) for p, store in zip(planes_of, image_stores) if old_ids[p] != plane_ids[p]]
        log.info("updating %d of %d planes of %s in place", len(to_write), nchan, cube_store)
        # Marked twice: in the attributes, and by a file that survives the workflow's putting back an
        # earlier zarr.json (Snakemake restores an update() output when its job fails).
        with updating(cube_store):
            with quiet_zarr_v3():
                existing.attrs["complete"] = False
                zarr.consolidate_metadata(cube_store, zarr_format=3)
                tables = _ChannelTables(
                    freqs=existing["freq"][...], channels=existing["channel"][...],
                    beams=np.column_stack([existing[k][...] for k in ("bmaj", "bmin", "bpa")]),
                    rms=existing["rms"][...], diverged=existing["clean_diverged"][...].astype(bool))
            _fill_planes(existing[image], tables, to_write, image, npix, target, cell_rad)
            result = _finish_cube(Path(cube_store), image, tables, plane_ids, layout, first_attrs, image_stores,
                                  new=False, inputs=[str(i) for i in inputs])
    result.planes_written = len(to_write)
    write_qa(qa_path, "cube", result, rule)
    log.info("cube %s: %d channels (%d written), %d fully flagged, %d excluded", cube_store, nchan, len(to_write),
             len(result.flagged_channels), len(excluded))
    return result


def create_cube_array(path: Path, image: str, nchan: int, npix: int, chunk: int, npix_x: int | None = None,
                      shard: bool = False):
    """An empty cube store at ``path`` with the image variable laid out (1, 1, chunk, chunk);
    ``npix`` by ``npix_x`` pixels (square unless npix_x is given)."""
    import dask.array as da
    import xarray as xr
    import zarr

    npix_x = npix if npix_x is None else npix_x
    template = xr.Dataset(
        {image: (("freq", "stokes", "y", "x"), da.zeros((nchan, len(STOKES), npix, npix_x), dtype=np.float32,
                                                          chunks=(1, len(STOKES), npix, npix_x) if shard
                                                          else (1, 1, chunk, chunk)),
                 {"units": "Jy/beam", "description": f"{image} image cube"})},
        coords={"stokes": list(STOKES)},
    )
    with quiet_zarr_v3():
        template.to_zarr(path, mode="w", zarr_format=3, compute=False, consolidated=False,
                         encoding={image: {"chunks": (1, 1, chunk, chunk)}
                                   | ({"shards": cube_shard(len(STOKES), npix, npix_x, chunk)} if shard else {})})
    return zarr.open_array(path / image, mode="r+")


def _finish_cube(path: Path, image: str, tables: _ChannelTables, plane_ids, layout, first_attrs, image_stores,
                 *, new: bool, sources: np.ndarray | None = None, inputs: Sequence[str] = ()) -> CubeResult:
    """Checks, the per-channel arrays and attributes of a cube whose planes are written."""
    import xarray as xr
    import zarr

    freqs, channels, beams, rms = tables.freqs, tables.channels, tables.beams, tables.rms
    nchan = len(freqs)
    excluded = set(layout["excluded"])
    # a channel is flagged when its first Stokes parameter (I, or Q for a cube of Q and U only) has no data
    first = list(STOKES).index(first_attrs.get("stokes_present", list(STOKES))[0])
    flagged = [int(channels[p]) for p in range(nchan) if p not in excluded and not np.isfinite(rms[p, first])]
    if len(flagged) + len(excluded) == nchan:
        raise fail(first_attrs.get("ms", image_stores[0]),
                   f"every one of its {nchan - len(excluded)} channels is flagged or has no positive weight: "
                   "nothing to image")
    if np.any(np.diff(freqs) <= 0):
        raise fail(path, "channel frequencies are not increasing; the channel list is out of order")
    if new:
        extra = xr.Dataset(
            {
                "bmaj": ("freq", beams[:, 0], {"units": "deg"}),
                "bmin": ("freq", beams[:, 1], {"units": "deg"}),
                "bpa": ("freq", beams[:, 2], {"units": "deg", "description": "east of north"}),
                "rms": (("freq", "stokes"), rms, {"units": "Jy/beam", "description": "MAD-based rms of each plane"}),
                "clean_diverged": ("freq", tables.diverged, {"description": "CLEAN diverged; the plane holds the model "
                                                                            "of the last major cycle before"}),
                "source_ms": ("freq", sources[:, 0], {"description": "index of the channel's MS in attrs inputs"}),
                "source_spw": ("freq", sources[:, 1], {"description": "spectral window of the channel in its MS"}),
                "source_channel": ("freq", sources[:, 2], {"description": "channel number in that window"}),
            },
            coords={"freq": ("freq", freqs, {"units": "Hz"}), "channel": ("freq", channels), "stokes": list(STOKES)},
        )
        with quiet_zarr_v3():
            extra.to_zarr(path, mode="a", zarr_format=3, consolidated=False)
    with quiet_zarr_v3():
        group = zarr.open_group(path, mode="r+")
        if not new:
            for k, name in enumerate(("bmaj", "bmin", "bpa")):
                group[name][...] = beams[:, k]
            group["rms"][...] = rms
            group["clean_diverged"][...] = tables.diverged
        group.attrs.update({
            "wcs": first_attrs["wcs"], "image": image, "flagged_channels": flagged,
            "excluded_channels": layout["excluded"],
            "stokes_present": first_attrs.get("stokes_present", list(STOKES)),
            "common_beam": layout["common_beam"], "layout": layout, "plane_ids": plane_ids, "inputs": list(inputs),
            "provenance": provenance({"channel_images": f"{len(image_stores)} stores, first {image_stores[0]}"}),
            "complete": True,
        })
        zarr.consolidate_metadata(path, zarr_format=3)
    finite_rms = np.isfinite(rms)
    return CubeResult(
        channels=nchan, freq_min_hz=float(np.nanmin(freqs)), freq_max_hz=float(np.nanmax(freqs)),
        flagged_channels=flagged, excluded_channels=layout["excluded"],
        rms_median={s: float(np.nanmedian(rms[:, k])) if finite_rms[:, k].any() else None for k,
                    s in enumerate(STOKES)},
        beam_bmaj_deg_range=([float(np.nanmin(beams[:, 0])), float(np.nanmax(beams[:, 0]))]
                             if np.isfinite(beams[:, 0]).any() else None),
        diverged_channels=[int(channels[p]) for p in np.nonzero(tables.diverged)[0]],
    )


def cube_from_fits(stokes_paths: dict[str, Sequence[str | os.PathLike]], cube_store: str | os.PathLike,
                   qa_path: str | os.PathLike, *, freqs_file: str | os.PathLike | None = None, chunk_px: int = 256,
                   shard: bool = False,
                   rule: str = "spectropol") -> CubeResult:
    """A cube store from FITS images made elsewhere, so that the Faraday and catalogue stages run
    on them: ``stokes_paths`` maps each of Q, U (required), I and V (optional) to one cube with a
    FREQ axis or to one file per channel (WSClean's -channel-NNNN- images). Frequencies come from
    the headers or from ``freqs_file`` (Hz, one per line, in the order of the files and their planes,
    as RM-Tools reads them); planes are put in increasing frequency; blanks (NaN) stay NaN and leave
    the pixel's channel out of RM synthesis. A Stokes parameter not given is a NaN plane, and the
    cube's ``stokes_present`` says which were. Written a plane at a time, under a temporary name."""
    from ..io.fits_cubes import collect_stokes, read_frequency_file, read_plane

    missing = [s for s in ("Q", "U") if not stokes_paths.get(s)]
    if missing:
        raise fail(cube_store, f"needs FITS images of Stokes {' and '.join(missing)}")
    unknown = set(stokes_paths) - set(STOKES)
    if unknown:
        raise ValueError(f"unknown Stokes parameters {sorted(unknown)}: give I, Q, U or V")
    freqs_given = read_frequency_file(freqs_file) if freqs_file else None
    present = [s for s in STOKES if stokes_paths.get(s)]
    collected = {s: collect_stokes(list(stokes_paths[s]), s, freqs_given) for s in present}
    reference = collected["Q"]
    freqs = reference.freqs_hz
    for s, planes in collected.items():
        if planes.shape != reference.shape:
            raise fail(planes.files[0], f"Stokes {s} images are {planes.shape[1]}x{planes.shape[0]} pixels, "
                                        f"Stokes Q's {reference.shape[1]}x{reference.shape[0]}")
        if len(planes.planes) != len(freqs) or not np.allclose(planes.freqs_hz, freqs, rtol=1e-9, atol=0):
            raise fail(planes.files[0], f"Stokes {s} has {len(planes.planes)} planes at other frequencies than "
                                        f"Stokes Q's {len(freqs)}")
    nchan, (ny, nx) = len(freqs), reference.shape
    chunk = min(chunk_px, ny, nx)
    image = "image"
    beams = np.array([p.beam_deg for p in reference.planes], dtype=np.float64)
    rms = np.full((nchan, len(STOKES)), np.nan, dtype=np.float32)
    files = [str(f) for f in reference.files]
    sources = np.array([(files.index(p.path), 0, p.plane_in_file) for p in reference.planes], dtype=np.int32)
    with atomic_path(cube_store) as partial:
        array = create_cube_array(partial, image, nchan, ny, chunk, npix_x=nx, shard=shard)
        for c in range(nchan):  # a channel's four Stokes planes at once: one shard, written whole
            planes = np.full((len(STOKES), ny, nx), np.nan, dtype=np.float32)
            for k, s in enumerate(STOKES):
                if s in collected:
                    planes[k] = read_plane(collected[s].planes[c])
                rms[c, k] = mad_rms(planes[k])
            array[c] = planes
        tables = _ChannelTables(freqs=freqs, channels=np.arange(nchan, dtype=np.int32), beams=beams, rms=rms,
                                diverged=np.zeros(nchan, dtype=bool))
        layout = {"nchan": nchan, "npix": [ny, nx], "image": image, "chunk": chunk, "shard": shard,
                  "wcs": reference.wcs,
                  "common_beam": None, "excluded": []}
        first = {"wcs": reference.wcs, "stokes_present": present}
        result = _finish_cube(partial, image, tables, [None] * nchan, layout, first, files, new=True,
                              sources=sources, inputs=files)
    write_qa(qa_path, "cube", result, rule)
    log.info("cube %s from FITS: %d channels %.6g..%.6g MHz, Stokes %s, %dx%d pixels", cube_store, nchan,
             freqs[0] / 1e6, freqs[-1] / 1e6, "".join(present), nx, ny)
    return result


def _beams_table(beams: np.ndarray):
    """A CASA-style BEAMS table of per-channel beams (arcsec, deg) for a one-Stokes cube."""
    from astropy.io import fits

    nchan = len(beams)
    table = fits.BinTableHDU.from_columns([
        fits.Column("BMAJ", "1E", "arcsec", array=beams[:, 0] * 3600),
        fits.Column("BMIN", "1E", "arcsec", array=beams[:, 1] * 3600),
        fits.Column("BPA", "1E", "deg", array=beams[:, 2]),
        fits.Column("CHAN", "1J", array=np.arange(nchan, dtype=np.int32)),
        fits.Column("POL", "1J", array=np.zeros(nchan, dtype=np.int32)),
    ], name="BEAMS")
    table.header["NCHAN"] = nchan
    table.header["NPOL"] = 1
    return table


PLANE_ID_CHARS = 32  # a product id (uuid4 hex)


def _planes_table(plane_ids: Sequence[str | None]):
    """The PLANES table of a FITS cube: which cube plane (its id) each channel plane holds, so that
    a later export rewrites only the planes that changed."""
    from astropy.io import fits

    ids = np.array([(pid or "").encode() for pid in plane_ids], dtype=f"S{PLANE_ID_CHARS}")
    return fits.BinTableHDU.from_columns([
        fits.Column("CHAN", "1J", array=np.arange(len(plane_ids), dtype=np.int32)),
        fits.Column("PLANE_ID", f"{PLANE_ID_CHARS}A", array=ids),
    ], name="PLANES")


def _same_value(old, new) -> bool:
    """A header value as read back equals the one we would write (floats to the digits FITS keeps)."""
    numbers = (int, float, np.integer, np.floating)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool | np.bool_) \
            and not isinstance(new, bool | np.bool_):
        return bool(np.isclose(float(old), float(new), rtol=1e-12, atol=0.0))
    return old == new


def _update_fits_planes(path: str | os.PathLike, header, plane_ids: Sequence[str | None], read_plane,
                        beams: np.ndarray) -> int | None:
    """Rewrite in place the planes of an existing FITS cube whose cube plane changed (its id in the
    PLANES table differs, or is unknown), then their rows of the BEAMS and PLANES tables and the
    provenance; the number of planes written, or None where the file cannot be updated in place (none,
    another header, no PLANES table): it is then written anew. The ids are updated last, so that an
    update cut short rewrites the same planes next time."""
    from astropy.io import fits

    try:
        hdus = fits.open(path, mode="update", memmap=True)
    except (OSError, ValueError):
        return None
    with hdus:
        old = hdus[0].header
        for card in header.cards:
            if card.keyword not in ("HISTORY", "COMMENT", "") and not _same_value(old.get(card.keyword), card.value):
                return None
        names = [hdu.name for hdu in hdus]
        if "PLANES" not in names or len(hdus["PLANES"].data) != len(plane_ids):
            return None
        old_ids = [value.decode() if isinstance(value, bytes) else str(value)
                   for value in hdus["PLANES"].data["PLANE_ID"]]
        changed = [c for c, pid in enumerate(plane_ids) if not pid or old_ids[c].strip() != pid]
        data = hdus[0].data
        for c in changed:
            data[0, c] = read_plane(c)
        if "BEAMS" in names and changed:
            table = hdus["BEAMS"].data
            table["BMAJ"][changed] = beams[changed, 0] * 3600
            table["BMIN"][changed] = beams[changed, 1] * 3600
            table["BPA"][changed] = beams[changed, 2]
        history = [card.value for card in header.cards if card.keyword == "HISTORY"]
        old_history = [k for k, card in enumerate(old.cards) if card.keyword == "HISTORY"]
        if len(old_history) == len(history):  # the provenance of the cube now, card for card
            for k, text in zip(old_history, history):
                old[k] = text
        if changed:
            hdus["PLANES"].data["PLANE_ID"][changed] = [(plane_ids[c] or "").encode() for c in changed]
    return len(changed)


def export_cube_fits(cube_store: str | os.PathLike, fits_paths: dict[str, str | os.PathLike]) -> dict[str, int]:
    """One FITS cube per Stokes (axes RA, DEC, FREQ, STOKES) with a CASA-style BEAMS table of the
    per-channel beams and a PLANES table of the cube planes it holds. Where the file exists for the
    same axes, only the planes that changed in the cube since it was written are rewritten, in place
    (a rerun after one channel changed writes one plane per Stokes); else it is streamed a channel at
    a time. Returns the planes written per Stokes."""
    import zarr

    from ..io.wcs import to_fits_header

    cube = open_store(cube_store, "cube")  # zarr alone: xarray and dask.array cost a small job 0.7 s
    image = cube.attrs["image"]
    ny, nx = cube[image].shape[-2:]
    batch_codecs(4 * cube[image].chunks[-1] ** 2)
    freqs = np.asarray(cube["freq"][...])
    if len(freqs) > 1 and not np.allclose(np.diff(freqs), freqs[1] - freqs[0], rtol=1e-6, atol=0):
        raise fail(cube_store, "channels are not evenly spaced, which a FITS FREQ axis cannot describe")
    beams = np.column_stack([np.asarray(cube[name][...], dtype=np.float64) for name in ("bmaj", "bmin", "bpa")])
    finite = np.isfinite(beams[:, 0])
    plane_ids = list(cube.attrs.get("plane_ids") or [None] * len(freqs))
    array = zarr.open_array(f"{cube_store}/{image}", mode="r")
    written = {}
    for stokes, path in fits_paths.items():
        keywords = {"SIMPLE": True, "BITPIX": -32, "NAXIS": 4, "NAXIS1": nx, "NAXIS2": ny,
                    "NAXIS3": len(freqs), "NAXIS4": 1, "EXTEND": True}
        keywords |= cube.attrs["wcs"] | spectral_axis(3, freqs) | stokes_axis(4, [stokes])
        keywords |= {"BUNIT": "Jy/beam", "BTYPE": "Intensity", "ORIGIN": "spectropol"}
        if finite.any():
            # Primary beam keywords: the largest beam, the one all channels can be convolved to.
            keywords |= beam_keywords(dict(zip(("bmaj_deg", "bmin_deg", "bpa_deg"), beams[np.nanargmax(beams[:, 0])])))
            keywords["CASAMBM"] = True
        keywords["PROVENANCE"] = cube.attrs["provenance"]
        k = [str(label) for label in cube["stokes"][...]].index(stokes)

        def read_plane(c, k=k):
            return np.asarray(array[c, k], dtype=np.float32)

        count = _update_fits_planes(path, to_fits_header(keywords), plane_ids, read_plane, beams) \
            if Path(path).exists() else None
        if count is None:
            extensions = ([_beams_table(beams)] if finite.any() else []) + [_planes_table(plane_ids)]
            write_planes(path, keywords, (read_plane(c) for c in range(len(freqs))), extensions)
            count = len(freqs)
        written[stokes] = count
        log.info("%s: %d of %d planes written", path, count, len(freqs))
    return written
