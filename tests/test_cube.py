"""Gathering channel images: fully flagged channels become NaN planes, recorded in QA."""

import json
import warnings

import numpy as np
import pytest

from spectropol.cube import export_fits_cubes, gather_cube, open_cube
from spectropol.imaging import image_channel
from spectropol.moments import faraday_moments, open_moments
from spectropol.ms import inspect_ms
from spectropol.split import split_channel
from spectropol.wcs import celestial_header

ARCSEC = np.pi / (180 * 3600)


def test_flagged_channel_is_a_nan_plane_and_the_rest_goes_on(small_ms, tmp_path):
    from casacore.tables import table

    ms = small_ms(feeds="circular")
    with table(str(ms), readonly=False, ack=False) as t:
        flags = t.getcol("FLAG")
        flags[:, 2, :] = True
        t.putcol("FLAG", flags)
    selection = inspect_ms(str(ms))
    stores = []
    for channel in range(len(selection.freqs)):
        split_channel(selection, channel, tmp_path / f"v{channel}.zarr", tmp_path / f"v{channel}.json")
        image_channel(tmp_path / f"v{channel}.zarr", tmp_path / f"i{channel}.zarr", tmp_path / f"i{channel}.json",
                      npix=128, cell_rad=40 * ARCSEC, wcs=celestial_header(*selection.phase_centre_rad, 128, 128, 40 * ARCSEC))
        stores.append(tmp_path / f"i{channel}.zarr")
    qa_image = json.loads((tmp_path / "i2.json").read_text())
    assert qa_image["visibilities_used"]["I"] == 0 and qa_image["stokes"]["I"]["peak"] is None

    stats = gather_cube(stores, tmp_path / "cube.zarr", tmp_path / "cube.json", chunk=64)
    assert stats["flagged_channels"] == [2]
    cube = open_cube(tmp_path / "cube.zarr")
    data = cube["dirty"].values
    assert np.isnan(data[2]).all()
    assert np.isfinite(np.delete(data, 2, axis=0)).all()
    assert cube["dirty"].data.chunksize == (1, 1, 64, 64)

    paths = {s: tmp_path / f"cube_{s}.fits" for s in "IQUV"}
    export_fits_cubes(tmp_path / "cube.zarr", paths)
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plane = fits.getdata(paths["Q"])[0]
    assert np.isnan(plane[2]).all() and np.isfinite(plane[3]).all()

    faraday_moments(tmp_path / "cube.zarr", tmp_path / "m.zarr", tmp_path / "m.json", chunk_mb=1)
    maps = open_moments(tmp_path / "m.zarr")["moments"].values
    assert np.isfinite(maps[:, :2]).all()  # means and standard deviations everywhere despite the NaN plane


def test_no_partial_store_is_left_when_writing_fails(tmp_path, monkeypatch):
    # A write interrupted by an exception leaves neither the final store nor its temporary.
    import zarr

    from spectropol import products

    def broken(self, name, **kwargs):
        if name == "b":
            raise OSError("disk full")
        return original(self, name, **kwargs)

    original = zarr.Group.create_array
    monkeypatch.setattr(zarr.Group, "create_array", broken)
    variables = {"a": (("x",), np.arange(4.0), {}), "b": (("x",), np.arange(4.0), {})}
    with pytest.raises(OSError, match="disk full"):
        products.write_store(tmp_path / "out.zarr", variables, {})
    assert list(tmp_path.iterdir()) == []
