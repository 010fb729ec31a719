"""FITS products written atomically: 2-D maps, cubes streamed a plane at a time and cubes written
a spatial tile at a time through a memory map, so that memory stays at one plane or one tile.
Headers follow radio conventions (io/wcs.py): DS9, CARTA and astropy read them without warnings.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable

import numpy as np

from .stores import atomic_path
from .wcs import to_fits_header


def product_keywords(bunit: str, btype: str, provenance: dict) -> dict:
    """The keywords every spectropol FITS product carries after its axes."""
    return {"BUNIT": bunit, "BTYPE": btype, "ORIGIN": "spectropol", "PROVENANCE": provenance}


def write_map(path: str | os.PathLike, plane: np.ndarray, wcs: dict, *, bunit: str, btype: str,
              provenance: dict) -> None:
    """A 2-D image (y, x) as float32 with the celestial ``wcs`` header."""
    from astropy.io import fits

    header = to_fits_header(wcs | product_keywords(bunit, btype, provenance))
    with atomic_path(path) as partial:
        fits.PrimaryHDU(np.asarray(plane, dtype=np.float32), header=header).writeto(partial)


def write_planes(path: str | os.PathLike, keywords: dict, planes: Iterable[np.ndarray],
                 extensions: Iterable = ()) -> None:
    """A cube whose primary header is ``keywords`` (SIMPLE, BITPIX -32, NAXISn, axes, ...), its data
    streamed one plane at a time from ``planes``; ``extensions`` (astropy HDUs) appended after."""
    from astropy.io import fits

    with atomic_path(path) as partial:
        stream = fits.StreamingHDU(partial, to_fits_header(keywords))
        for plane in planes:
            stream.write(np.asarray(plane).astype(">f4"))
        stream.close()
        for hdu in extensions:
            fits.append(partial, hdu.data, hdu.header)


def write_cube_by_tiles(path: str | os.PathLike, keywords: dict, variable,
                        function: Callable[[np.ndarray], np.ndarray] = np.asarray) -> None:
    """A (z, y, x) dask-backed xarray variable as a float32 FITS cube of ``function`` of it, one
    stored chunk at a time through a memory map (the FITS axis order is the reverse of ours)."""
    from astropy.io import fits

    shape = variable.shape
    with atomic_path(path) as partial:
        header = to_fits_header(keywords)
        header_bytes = len(header.tostring())
        data_bytes = int(np.prod(shape)) * 4
        padded = data_bytes + (-data_bytes) % 2880
        with open(partial, "wb") as handle:
            handle.write(header.tostring().encode("ascii"))
            handle.seek(header_bytes + padded - 1)
            handle.write(b"\0")
        with fits.open(partial, mode="update", memmap=True) as hdus:
            data = hdus[0].data
            for slices in _chunk_slices(variable.chunks):
                data[slices] = function(variable[slices].values).astype(np.float32)


def _chunk_slices(chunks):
    """Slices of each chunk of an array with dask ``chunks``."""
    edges = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        yield tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, index))
