"""The cube stage: channel images gathered into one labelled Zarr cube (freq, stokes, y, x), and
FITS cubes for DS9, CARTA and astropy.

The cube is chunked (1, 1, chunk, chunk): each channel is written once, without touching the
others, and a reader that wants the whole spectral axis of a spatial tile (moments, RM synthesis)
reads one column of chunks. Memory is one channel image, whatever the number of channels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

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


def gather_cube(image_stores: Sequence[str | os.PathLike], cube_store: str | os.PathLike, qa_path: str | os.PathLike, *,
                image: str = "dirty", chunk: int = 256, common_beam: bool = False) -> dict:
    """Write the ``image`` planes of each channel store, in the given order, into one cube store.

    The cube carries per-channel beams (bmaj, bmin, bpa in deg) and the MAD rms of each plane
    (``rms``, Jy/beam), which later stages use as channel noise. With ``common_beam`` every channel
    is first convolved to one beam that contains all of theirs (needed for RM synthesis of resolved
    emission across a wide band); the cube's beams are then all that beam.
    """
    import dask.array as da
    import xarray as xr
    import zarr

    first_planes, first_attrs = read_channel_image(image_stores[0], image)
    npix_y, npix_x = first_planes.shape[-2:]
    target = None
    if common_beam:
        with quiet_zarr_v3():
            channel_beams = [dict(zarr.open_group(store, mode="r").attrs)["beam"] for store in image_stores]
        channel_beams = [{k: np.nan if v is None else v for k, v in b.items()} for b in channel_beams]
        target = find_common_beam(channel_beams)
        cell_rad = first_attrs["imaging"]["cell_rad"]
        log.info("common beam %.2f x %.2f arcsec, pa %.1f deg", target["bmaj_deg"] * 3600, target["bmin_deg"] * 3600, target["bpa_deg"])
    nchan = len(image_stores)
    chunk = min(chunk, npix_y, npix_x)
    freqs = np.empty(nchan)
    channels = np.empty(nchan, dtype=np.int32)
    beams = np.full((nchan, 3), np.nan)
    rms = np.full((nchan, len(STOKES)), np.nan, dtype=np.float32)

    template = xr.Dataset(
        {image: (("freq", "stokes", "y", "x"), da.zeros((nchan, len(STOKES), npix_y, npix_x), dtype=np.float32,
                                                          chunks=(1, 1, chunk, chunk)),
                 {"units": "Jy/beam", "description": f"{image} image cube"})},
        coords={"stokes": list(STOKES)},
    )
    with atomic_path(cube_store) as partial:
        with quiet_zarr_v3():
            template.to_zarr(partial, mode="w", zarr_format=3, compute=False, consolidated=False,
                             encoding={image: {"chunks": (1, 1, chunk, chunk)}})
        array = zarr.open_array(partial / image, mode="r+")
        flagged = []
        for c, store in enumerate(image_stores):
            planes, attrs = read_channel_image(store, image)
            if planes.shape[-2:] != (npix_y, npix_x):
                raise fail(store, f"image size {planes.shape[-2]}x{planes.shape[-1]} differs from the first channel's {npix_y}x{npix_x}")
            beam = {k: np.nan if v is None else v for k, v in attrs["beam"].items()}
            if target is not None and np.isfinite(beam["bmaj_deg"]):
                planes = convolve_to_beam(planes, beam, target, cell_rad)
                beam = target
            array[c] = planes
            freqs[c] = attrs["freq_hz"]
            channels[c] = attrs["channel"]
            beams[c] = [beam["bmaj_deg"], beam["bmin_deg"], beam["bpa_deg"]]
            rms[c] = [mad_rms(plane) for plane in planes]
            if not np.isfinite(planes[0]).any():
                flagged.append(int(channels[c]))
        if len(flagged) == nchan:
            raise fail(first_attrs.get("ms", image_stores[0]),
                       f"every one of its {nchan} channels is flagged or has no positive weight: nothing to image")
        if np.any(np.diff(freqs) <= 0):
            raise fail(cube_store, "channel frequencies are not increasing; the channel list is out of order")
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
            extra.to_zarr(partial, mode="a", zarr_format=3, consolidated=False)
            group = zarr.open_group(partial, mode="r+")
            group.attrs.update({
                "wcs": first_attrs["wcs"], "image": image, "flagged_channels": flagged,
                "stokes_present": first_attrs.get("stokes_present", list(STOKES)),
                "common_beam": target,
                "provenance": provenance({"channel_images": f"{len(image_stores)} stores, first {image_stores[0]}"}),
            })
            zarr.consolidate_metadata(partial, zarr_format=3)

    stats = {
        "channels": nchan, "freq_min_hz": float(freqs.min()), "freq_max_hz": float(freqs.max()),
        "flagged_channels": flagged,
        "rms_median": {s: float(np.nanmedian(rms[:, k])) if np.isfinite(rms[:, k]).any() else None for k, s in enumerate(STOKES)},
        "beam_bmaj_deg_range": [float(np.nanmin(beams[:, 0])), float(np.nanmax(beams[:, 0]))] if np.isfinite(beams[:, 0]).any() else None,
    }
    write_qa(qa_path, "cube", stats, rule="gather_cube")
    log.info("cube %s: %d channels, %d fully flagged", cube_store, nchan, len(flagged))
    return stats


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
