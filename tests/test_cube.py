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

    # cube.shard: the same cube in a file per channel plane (not per channel, Stokes and 64^2 chunk)
    gather_cube(stores, tmp_path / "sharded.zarr", tmp_path / "sharded.json",
                CubeOptions(chunk_px=64, image="dirty", shard=True))
    sharded = open_cube(tmp_path / "sharded.zarr")
    np.testing.assert_array_equal(sharded["dirty"].values, data)
    assert sharded["dirty"].data.chunksize == (1, 1, 64, 64)  # read as before, a chunk at a time
    stored = len(selection.freqs) - 1  # the flagged plane is all NaN, the fill value: zarr stores nothing
    assert len([p for p in (tmp_path / "sharded.zarr/dirty/c").rglob("*") if p.is_file()]) == stored
    assert len([p for p in (tmp_path / "cube.zarr/dirty/c").rglob("*") if p.is_file()]) == stored * 4 * 4


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


def test_fits_cubes_are_updated_in_place_plane_by_plane(tmp_path):
    # A cube whose plane ids say which planes changed: the FITS cubes rewrite exactly those planes
    # in place, and equal the cube after every export; other axes write the file anew.
    import zarr
    from astropy.io import fits

    from conftest import write_test_cube
    from spectropol.io.stores import quiet_zarr_v3

    rng = np.random.default_rng(7)
    q, u = rng.normal(size=(2, 6, 24, 24)).astype(np.float32)
    write_test_cube(tmp_path / "cube.zarr", q, u, chunk=8)

    def set_plane_ids(ids):
        with quiet_zarr_v3():
            group = zarr.open_group(tmp_path / "cube.zarr", mode="r+")
            group.attrs["plane_ids"] = ids
            zarr.consolidate_metadata(tmp_path / "cube.zarr")

    def fits_equal_cube():
        cube = open_cube(tmp_path / "cube.zarr")["dirty"].values
        return all(np.array_equal(fits.getdata(paths[s])[0], cube[:, k], equal_nan=True) for k, s in enumerate("IQUV"))

    ids = [f"{k:032x}" for k in range(6)]
    set_plane_ids(ids)
    paths = {s: tmp_path / f"cube_{s}.fits" for s in "IQUV"}
    assert export_cube_fits(tmp_path / "cube.zarr", paths) == dict.fromkeys("IQUV", 6)
    before = {s: paths[s].stat().st_ino for s in "IQUV"}
    assert export_cube_fits(tmp_path / "cube.zarr", paths) == dict.fromkeys("IQUV", 0)

    array = zarr.open_array(tmp_path / "cube.zarr/dirty", mode="r+")
    array[3, 1] = array[3, 1] * 2.0  # channel 3 re-imaged: new data and a new plane id
    set_plane_ids(ids[:3] + ["f" * 32] + ids[4:])
    assert export_cube_fits(tmp_path / "cube.zarr", paths) == dict.fromkeys("IQUV", 1)
    assert fits_equal_cube() and {s: paths[s].stat().st_ino for s in "IQUV"} == before  # the same files
    with fits.open(paths["Q"]) as hdus:
        assert hdus["PLANES"].data["PLANE_ID"][3] == "f" * 32

    write_test_cube(tmp_path / "cube.zarr", q[:5], u[:5], chunk=8)  # one channel fewer: another header
    assert export_cube_fits(tmp_path / "cube.zarr", paths) == dict.fromkeys("IQUV", 5)
    assert fits_equal_cube()


def test_cube_regions_read_from_chunk_files_equal_zarr_s(tmp_path):
    # The Faraday stage and the catalogue read cube regions chunk file by chunk file (io.chunks):
    # every region, at edges and across chunks, with a never-written (NaN) plane, equals what zarr
    # reads; a sharded cube, whose layout that reader does not know, is read by zarr.
    import zarr

    from spectropol.io.chunks import ChunkFiles
    from spectropol.io.cube import write_cube
    from spectropol.io.wcs import celestial_header

    rng = np.random.default_rng(3)
    data = rng.standard_normal((5, 4, 70, 90)).astype(np.float32)
    data[2] = np.nan  # a flagged channel: zarr writes none of its chunks
    wcs = celestial_header(0.5, -0.4, 90, 70, 1e-4)
    for shard in (False, True):
        store = tmp_path / f"cube{shard}.zarr"
        write_cube(store, data, np.linspace(1e9, 1.1e9, 5), wcs, chunk=32, shard=shard)
        path = store / "dirty"
        reader, array = ChunkFiles.open(path), zarr.open_array(str(path), mode="r")
        assert isinstance(reader, ChunkFiles) != shard
        if not shard:
            assert not (path / "c/2/1/0/0").exists()
        for selection in [(slice(None), 1, slice(None), slice(None)),
                          (slice(1, 4), slice(1, 3), slice(20, 70), slice(31, 65)),
                          (2, 0, slice(0, 5), slice(85, 100)),
                          (slice(None), slice(0, 3), slice(64, 70), slice(0, 90)),
                          (4, 3, 69, 89), (slice(3, 3), 0, slice(None), slice(None))]:
            read, expected = reader[selection], array[selection]
            assert read.shape == expected.shape and read.dtype == np.float32
            np.testing.assert_array_equal(read, expected)
            np.testing.assert_array_equal(read, data[selection])
