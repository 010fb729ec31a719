"""Faraday moments against scipy, with NaN channels, weights and Dask tiling."""

import numpy as np
import pytest
from scipy import stats

from conftest import write_test_cube
from spectropol.kernels.moments import MOMENTS, QUANTITIES, weighted_moments
from spectropol.options import DaskOptions, MomentsOptions
from spectropol.stages.moments import faraday_moments, open_moments


def test_unweighted_moments_match_scipy():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 1.0, (40, 5, 6))  # skewed, so skewness and kurtosis are non-trivial
    got = weighted_moments(values)
    np.testing.assert_allclose(got[0], values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[1], values.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[2], stats.skew(values, axis=0, bias=True), rtol=1e-10)
    np.testing.assert_allclose(got[3], stats.kurtosis(values, axis=0, fisher=True, bias=True), rtol=1e-10)


def test_nan_channels_are_ignored_pixel_by_pixel():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(30, 4))
    values[[3, 7, 19], 0] = np.nan
    values[:, 1] = np.nan  # a pixel with no data at all
    got = weighted_moments(values)
    kept = values[np.isfinite(values[:, 0]), 0]
    np.testing.assert_allclose(got[:, 0], [kept.mean(), kept.std(), stats.skew(kept), stats.kurtosis(kept)], rtol=1e-10)
    assert np.all(np.isnan(got[:, 1]))


def test_integer_weights_equal_repeated_samples():
    # Weight 3 on a channel is the same as that channel appearing three times.
    rng = np.random.default_rng(2)
    values = rng.normal(size=(12, 3))
    weights = rng.integers(1, 4, 12).astype(float)
    repeated = np.repeat(values, weights.astype(int), axis=0)
    np.testing.assert_allclose(weighted_moments(values, weights), weighted_moments(repeated), rtol=1e-10)


@pytest.mark.parametrize("weighting", ["none", "noise"])
def test_tiled_moments_equal_whole_array_moments(tmp_path, weighting):
    # chunk_mb small enough for tiles of 16 x 16 on a 40 x 40 image: edges and partial tiles are
    # exercised, and the result must not depend on tiling.
    rng = np.random.default_rng(3)
    nfreq = 25
    q = rng.normal(size=(nfreq, 40, 40)).astype(np.float32)
    u = rng.normal(size=(nfreq, 40, 40)).astype(np.float32)
    q[5] = np.nan
    rms = rng.uniform(0.5, 2.0, (nfreq, 4)).astype(np.float32)
    write_test_cube(tmp_path / "cube.zarr", q, u, rms=rms)  # Stokes I zero: mean and std 0, no skewness
    faraday_moments(tmp_path / "cube.zarr", tmp_path / "m.zarr", tmp_path / "m.json",
                    MomentsOptions(weighting=weighting), DaskOptions(threads=2), chunk_mb=nfreq * 6 * 4 * 16 * 16 / 1e6)
    maps = open_moments(tmp_path / "m.zarr")
    assert maps["moments"].data.chunksize[-2:] == (16, 16)
    assert list(maps["quantity"].values) == list(QUANTITIES) and list(maps["moment"].values) == list(MOMENTS)
    if weighting == "noise":
        wi, wq, wu = (1 / rms[:, k].astype(float) ** 2 for k in (0, 1, 2))
        wp = 1 / (0.5 * (rms[:, 1].astype(float) ** 2 + rms[:, 2].astype(float) ** 2))
    else:
        wi = wq = wu = wp = None
    expected = np.stack([weighted_moments(np.zeros_like(q), wi), weighted_moments(q, wq), weighted_moments(u, wu),
                         weighted_moments(np.hypot(q, u), wp)])
    np.testing.assert_allclose(maps["moments"].values, expected, rtol=2e-5, atol=1e-6)
    assert np.all(maps["moments"].sel(quantity="I", moment="mean").values == 0)


def test_the_one_pass_makes_the_moments_of_the_moments_stage(tmp_path):
    # The workflow's moments come from the Faraday-depth pass, which reads the cube once for both:
    # they must be those faraday_moments makes alone, tiles and regions of another size.
    from spectropol.options import FaradayProductsOptions, RMSynthesisOptions
    from spectropol.stages.faraday import faraday_depth

    rng = np.random.default_rng(4)
    nfreq = 20
    q = rng.normal(size=(nfreq, 48, 48)).astype(np.float32)
    u = rng.normal(size=(nfreq, 48, 48)).astype(np.float32)
    q[3, :10] = np.nan
    rms = rng.uniform(0.5, 2.0, (nfreq, 4)).astype(np.float32)
    write_test_cube(tmp_path / "cube.zarr", q, u, rms=rms)
    options = MomentsOptions(weighting="noise")
    faraday_moments(tmp_path / "cube.zarr", tmp_path / "alone.zarr", tmp_path / "alone.json", options, chunk_mb=0.3)
    faraday_depth(tmp_path / "cube.zarr", {"peaks": tmp_path / "p.zarr", "candidates": tmp_path / "c.zarr"},
                  tmp_path / "f.json", RMSynthesisOptions(chunk_mb=0.5), None, FaradayProductsOptions(),
                  moments=options, moments_out=tmp_path / "pass.zarr", moments_qa=tmp_path / "pass.json")
    alone, one_pass = (open_moments(tmp_path / name)["moments"].values for name in ("alone.zarr", "pass.zarr"))
    np.testing.assert_array_equal(one_pass, alone)
    assert (tmp_path / "pass.json").exists()
