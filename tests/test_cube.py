"""Gathering channel images: fully flagged channels become NaN planes, recorded in QA."""

import json
import warnings

import numpy as np
import pytest

from conftest import dirty_settings, image_geometry
from spectropol.io.cube import open_cube
from spectropol.io.ms import select_data
from spectropol.options import CubeOptions, MomentsOptions
from spectropol.stages.cube import export_cube_fits, gather_cube
from spectropol.stages.image import image_channel
from spectropol.stages.moments import faraday_moments, open_moments
from spectropol.stages.split import split_channel


def test_flagged_channel_is_a_nan_plane_and_the_rest_goes_on(small_ms, tmp_path):
    from casacore.tables import table

    ms = small_ms(feeds="circular")
    with table(str(ms), readonly=False, ack=False) as t:
        flags = t.getcol("FLAG")
        flags[:, 2, :] = True
        t.putcol("FLAG", flags)
    selection = select_data(str(ms))
    geometry = image_geometry(selection, 128, 40.0)
    stores = []
    for channel in range(len(selection.freqs)):
        split_channel(selection, channel, tmp_path / f"v{channel}.zarr", tmp_path / f"v{channel}.json")
        image_channel(tmp_path / f"v{channel}.zarr", tmp_path / f"i{channel}.zarr", tmp_path / f"i{channel}.json",
                      geometry, dirty_settings())
        stores.append(tmp_path / f"i{channel}.zarr")
    qa_image = json.loads((tmp_path / "i2.json").read_text())
    assert qa_image["visibilities_used"]["I"] == 0 and qa_image["stokes"]["I"]["peak"] is None

    stats = gather_cube(stores, tmp_path / "cube.zarr", tmp_path / "cube.json", CubeOptions(chunk_px=64, image="dirty"))
    assert stats.flagged_channels == [2]
    cube = open_cube(tmp_path / "cube.zarr")
    data = cube["dirty"].values
    assert np.isnan(data[2]).all()
    assert np.isfinite(np.delete(data, 2, axis=0)).all()
    assert cube["dirty"].data.chunksize == (1, 1, 64, 64)

    paths = {s: tmp_path / f"cube_{s}.fits" for s in "IQUV"}
    export_cube_fits(tmp_path / "cube.zarr", paths)
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plane = fits.getdata(paths["Q"])[0]
    assert np.isnan(plane[2]).all() and np.isfinite(plane[3]).all()

    faraday_moments(tmp_path / "cube.zarr", tmp_path / "m.zarr", tmp_path / "m.json", MomentsOptions(), chunk_mb=1)
    maps = open_moments(tmp_path / "m.zarr")["moments"].values
    assert np.isfinite(maps[:, :2]).all()  # means and standard deviations everywhere despite the NaN plane


def test_no_partial_store_is_left_when_writing_fails(tmp_path, monkeypatch):
    # A write interrupted by an exception leaves neither the final store nor its temporary.
    import zarr

    from spectropol.io.stores import write_store

    def broken(self, name, **kwargs):
        if name == "b":
            raise OSError("disk full")
        return original(self, name, **kwargs)

    original = zarr.Group.create_array
    monkeypatch.setattr(zarr.Group, "create_array", broken)
    variables = {"a": (("x",), np.arange(4.0), {}), "b": (("x",), np.arange(4.0), {})}
    with pytest.raises(OSError, match="disk full"):
        write_store(tmp_path / "out.zarr", variables, {})
    assert list(tmp_path.iterdir()) == []
