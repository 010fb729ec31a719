"""The cube stage: channel images gathered into one labelled Zarr cube (freq, stokes, y, x), and
FITS cubes for DS9, CARTA and astropy.

The cube is chunked (1, 1, chunk, chunk): each channel is written once, without touching the
others, and a reader that wants the whole spectral axis of a spatial tile (moments, RM synthesis)
reads one column of chunks. Memory is one channel image, whatever the number of channels.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .beam import common_beam as find_common_beam
from .beam import convolve_to_beam
from .errors import fail
from .products import atomic_path, open_dataset, provenance, quiet_zarr_v3, read_store, write_qa
from .qa import mad_rms
from .stokes import STOKES
from .wcs import beam_keywords, spectral_axis, stokes_axis, to_fits_header

log = logging.getLogger(__name__)


def read_channel_image(store: str | os.PathLike, image: str) -> tuple[np.ndarray, dict]:
    """The (stokes, y, x) planes of one image kind and the attributes of a channel image store."""
    try:
        arrays, attrs = read_store(store, (image,))
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(store, f"not a spectropol channel image store with {image} planes ({err})") from None
    return arrays[image], attrs


def _channel_attrs(store: str | os.PathLike) -> dict:
    import zarr

    try:
        with quiet_zarr_v3():
            return dict(zarr.open_group(store, mode="r").attrs)
    except (FileNotFoundError, KeyError, ValueError) as err:
        raise fail(store, f"not a spectropol channel image store ({err})") from None


def _nan_beam(beam: dict) -> dict:
    return {k: np.nan if v is None else v for k, v in beam.items()}


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
    if attrs.get("complete") is not True or attrs.get("layout") != json.loads(json.dumps(layout)):
        return None
    return group


def gather_cube(image_stores: Sequence[str | os.PathLike], cube_store: str | os.PathLike, qa_path: str | os.PathLike, *,
                image: str = "dirty", chunk: int = 256, common_beam: bool = False,
                spectral_window: Sequence[float] | None = None, update: bool = False) -> dict:
    """Write the ``image`` planes of each channel store into one cube store.

    Without ``spectral_window`` the cube has one plane per store, in the given order. With it (the
    frequencies of every channel of the spectral window) the cube has one plane per channel and
    each store goes to the plane of its channel number; channels without a store (excluded) are NaN
    planes, listed in the attributes.

    The cube carries per-channel beams (bmaj, bmin, bpa in deg) and the MAD rms of each plane
    (``rms``, Jy/beam), which later stages use as channel noise. With ``common_beam`` every channel
    is first convolved to one beam that contains all of theirs (needed for RM synthesis of resolved
    emission across a wide band); the cube's beams are then all that beam.

    With ``update``, an existing complete cube of the same layout (planes, image kind, chunks,
    WCS, common beam) is updated in place: only planes whose channel store is not the one it was
    made from are rewritten. Otherwise the cube is written whole, under a temporary name.
    """
    import dask.array as da
    import xarray as xr
    import zarr

    attrs = [_channel_attrs(store) for store in image_stores]
    first_attrs = attrs[0]
    if spectral_window is None:
        planes_of = list(range(len(image_stores)))
        nchan = len(image_stores)
    else:
        nchan = len(spectral_window)
        planes_of = [int(a["channel"]) for a in attrs]
        if len(set(planes_of)) != len(planes_of) or not all(0 <= p < nchan for p in planes_of):
            raise fail(cube_store, f"channel image stores do not map one to one onto the {nchan} channels")
    target = None
    if common_beam:
        target = find_common_beam([_nan_beam(a["beam"]) for a in attrs])
        log.info("common beam %.2f x %.2f arcsec, pa %.1f deg", target["bmaj_deg"] * 3600, target["bmin_deg"] * 3600, target["bpa_deg"])
    cell_rad = first_attrs["imaging"]["cell_rad"]
    npix = first_attrs["imaging"]["npix"]
    chunk = min(chunk, npix)
    stored = set(planes_of)
    excluded = [p for p in range(nchan) if p not in stored]
    layout = {"nchan": nchan, "npix": npix, "image": image, "chunk": chunk, "wcs": first_attrs["wcs"],
              "common_beam": target, "excluded": excluded}
    plane_ids = [None] * nchan
    for p, a in zip(planes_of, attrs):
        plane_ids[p] = a["provenance"].get("product_id")

    def fill(array, freqs, channels, beams, rms, planes_to_write):
        for p, store in planes_to_write:
            planes, store_attrs = read_channel_image(store, image)
            if planes.shape[-2:] != (npix, npix):
                raise fail(store, f"image size {planes.shape[-2]}x{planes.shape[-1]} differs from the first channel's {npix}x{npix}")
            beam = _nan_beam(store_attrs["beam"])
            if target is not None and np.isfinite(beam["bmaj_deg"]):
                planes = convolve_to_beam(planes, beam, target, cell_rad)
                beam = target
            array[p] = planes
            freqs[p] = store_attrs["freq_hz"]
            channels[p] = store_attrs["channel"]
            beams[p] = [beam["bmaj_deg"], beam["bmin_deg"], beam["bpa_deg"]]
            rms[p] = [mad_rms(plane) for plane in planes]

    existing = _open_for_update(cube_store, layout) if update else None
    if existing is None:
        freqs = np.array(spectral_window, dtype=np.float64) if spectral_window is not None else np.full(nchan, np.nan)
        channels = np.arange(nchan, dtype=np.int32)
        beams = np.full((nchan, 3), np.nan)
        rms = np.full((nchan, len(STOKES)), np.nan, dtype=np.float32)
        template = xr.Dataset(
            {image: (("freq", "stokes", "y", "x"), da.zeros((nchan, len(STOKES), npix, npix), dtype=np.float32,
                                                              chunks=(1, 1, chunk, chunk)),
                     {"units": "Jy/beam", "description": f"{image} image cube"})},
            coords={"stokes": list(STOKES)},
        )
        to_write = list(zip(planes_of, image_stores))
        with atomic_path(cube_store) as partial:
            with quiet_zarr_v3():
                template.to_zarr(partial, mode="w", zarr_format=3, compute=False, consolidated=False,
                                 encoding={image: {"chunks": (1, 1, chunk, chunk)}})
            array = zarr.open_array(partial / image, mode="r+")
            for p in excluded:
                array[p] = np.nan
            fill(array, freqs, channels, beams, rms, to_write)
            stats = _finish_cube(partial, image, freqs, channels, beams, rms, plane_ids, layout, first_attrs,
                                 image_stores, new=True)
    else:
        old_ids = existing.attrs["plane_ids"]
        to_write = [(p, store) for p, store in zip(planes_of, image_stores) if old_ids[p] != plane_ids[p]]
        log.info("updating %d of %d planes of %s in place", len(to_write), nchan, cube_store)
        with quiet_zarr_v3():
            existing.attrs["complete"] = False
            zarr.consolidate_metadata(cube_store, zarr_format=3)
            freqs, channels = existing["freq"][...], existing["channel"][...]
            beams = np.column_stack([existing[k][...] for k in ("bmaj", "bmin", "bpa")])
            rms = existing["rms"][...]
        fill(existing[image], freqs, channels, beams, rms, to_write)
        stats = _finish_cube(Path(cube_store), image, freqs, channels, beams, rms, plane_ids, layout, first_attrs,
                             image_stores, new=False)
    stats["planes_written"] = len(to_write)
    write_qa(qa_path, "cube", stats, rule="gather_cube")
    log.info("cube %s: %d channels (%d written), %d fully flagged, %d excluded", cube_store, nchan, len(to_write),
             len(stats["flagged_channels"]), len(excluded))
    return stats


def _finish_cube(path: Path, image: str, freqs, channels, beams, rms, plane_ids, layout, first_attrs, image_stores,
                 *, new: bool) -> dict:
    """Checks, the per-channel arrays and attributes of a cube whose planes are written."""
    import xarray as xr
    import zarr

    nchan = len(freqs)
    excluded = set(layout["excluded"])
    flagged = [int(channels[p]) for p in range(nchan) if p not in excluded and not np.isfinite(rms[p, 0])]
    if len(flagged) + len(excluded) == nchan:
        raise fail(first_attrs.get("ms", image_stores[0]),
                   f"every one of its {nchan - len(excluded)} channels is flagged or has no positive weight: nothing to image")
    if np.any(np.diff(freqs) <= 0):
        raise fail(path, "channel frequencies are not increasing; the channel list is out of order")
    if new:
        extra = xr.Dataset(
            {
                "bmaj": ("freq", beams[:, 0], {"units": "deg"}),
                "bmin": ("freq", beams[:, 1], {"units": "deg"}),
                "bpa": ("freq", beams[:, 2], {"units": "deg", "description": "east of north"}),
                "rms": (("freq", "stokes"), rms, {"units": "Jy/beam", "description": "MAD-based rms of each plane"}),
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
        group.attrs.update({
            "wcs": first_attrs["wcs"], "image": image, "flagged_channels": flagged,
            "excluded_channels": layout["excluded"],
            "stokes_present": first_attrs.get("stokes_present", list(STOKES)),
            "common_beam": layout["common_beam"], "layout": layout, "plane_ids": plane_ids,
            "provenance": provenance({"channel_images": f"{len(image_stores)} stores, first {image_stores[0]}"}),
            "complete": True,
        })
        zarr.consolidate_metadata(path, zarr_format=3)
    finite_rms = np.isfinite(rms)
    return {
        "channels": nchan, "freq_min_hz": float(np.nanmin(freqs)), "freq_max_hz": float(np.nanmax(freqs)),
        "flagged_channels": flagged, "excluded_channels": layout["excluded"],
        "rms_median": {s: float(np.nanmedian(rms[:, k])) if finite_rms[:, k].any() else None for k, s in enumerate(STOKES)},
        "beam_bmaj_deg_range": [float(np.nanmin(beams[:, 0])), float(np.nanmax(beams[:, 0]))] if np.isfinite(beams[:, 0]).any() else None,
    }


def write_cube(cube_store: str | os.PathLike, data: np.ndarray, freqs: np.ndarray, wcs: dict, *, rms: np.ndarray | None = None,
               beams: np.ndarray | None = None, chunk: int = 256, image: str = "dirty") -> None:
    """Write an in-memory cube (freq, stokes I/Q/U/V, y, x) in the layout gather_cube produces, so
    that cubes from elsewhere (or made in tests) can enter the Faraday stages. ``rms`` (freq, stokes)
    defaults to the MAD rms of each plane; ``beams`` (freq, 3: bmaj, bmin, bpa in deg) to NaN."""
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
    chunks = {"freq": 1, "stokes": 1, "y": min(chunk, data.shape[2]), "x": min(chunk, data.shape[3])}
    with atomic_path(cube_store) as partial, quiet_zarr_v3():
        dataset.chunk(chunks).to_zarr(partial, mode="w", zarr_format=3, consolidated=True)


def open_cube(cube_store: str | os.PathLike):
    """The cube as a labelled xarray Dataset (lazy, dask-backed)."""
    return open_dataset(cube_store, "cube")


def export_fits_cubes(cube_store: str | os.PathLike, fits_paths: dict[str, str | os.PathLike]) -> None:
    """Write one FITS cube per Stokes (axes RA, DEC, FREQ, STOKES), streamed a channel at a time,
    with a CASA-style BEAMS table of the per-channel beams."""
    from astropy.io import fits

    cube = open_cube(cube_store)
    image = cube.attrs["image"]
    freqs = cube["freq"].values
    if len(freqs) > 1 and not np.allclose(np.diff(freqs), freqs[1] - freqs[0], rtol=1e-6, atol=0):
        raise fail(cube_store, "channels are not evenly spaced, which a FITS FREQ axis cannot describe")
    beams = np.column_stack([cube["bmaj"].values, cube["bmin"].values, cube["bpa"].values])
    finite = np.isfinite(beams[:, 0])
    for stokes, path in fits_paths.items():
        keywords = {"SIMPLE": True, "BITPIX": -32, "NAXIS": 4, "NAXIS1": cube.sizes["x"], "NAXIS2": cube.sizes["y"],
                    "NAXIS3": len(freqs), "NAXIS4": 1, "EXTEND": True}
        keywords |= cube.attrs["wcs"] | spectral_axis(3, freqs) | stokes_axis(4, [stokes])
        keywords |= {"BUNIT": "Jy/beam", "BTYPE": "Intensity", "ORIGIN": "spectropol"}
        if finite.any():
            # Primary beam keywords: the largest beam, the one all channels can be convolved to.
            keywords |= beam_keywords(dict(zip(("bmaj_deg", "bmin_deg", "bpa_deg"), beams[np.nanargmax(beams[:, 0])])))
            keywords["CASAMBM"] = True
        keywords["PROVENANCE"] = cube.attrs["provenance"]
        header = to_fits_header(keywords)
        k = list(cube["stokes"].values).index(stokes)
        with atomic_path(path) as partial:
            stream = fits.StreamingHDU(partial, header)
            for c in range(len(freqs)):
                stream.write(cube[image][c, k].values.astype(">f4"))
            stream.close()
            if finite.any():
                table = fits.BinTableHDU.from_columns([
                    fits.Column("BMAJ", "1E", "arcsec", array=beams[:, 0] * 3600),
                    fits.Column("BMIN", "1E", "arcsec", array=beams[:, 1] * 3600),
                    fits.Column("BPA", "1E", "deg", array=beams[:, 2]),
                    fits.Column("CHAN", "1J", array=np.arange(len(freqs), dtype=np.int32)),
                    fits.Column("POL", "1J", array=np.zeros(len(freqs), dtype=np.int32)),
                ], name="BEAMS")
                table.header["NCHAN"] = len(freqs)
                table.header["NPOL"] = 1
                fits.append(partial, table.data, table.header)
        log.info("wrote %s", path)
