"""The Faraday stages on cubes: tiling, the Dask scheduler choice, RM-Tools agreement, FITS."""

import warnings

import numpy as np
import pytest

from conftest import write_test_cube
from spectropol.kernels.faraday import faraday_grid, lambda_squared, rm_synthesis_block
from spectropol.options import DaskOptions, PeaksOptions, RMCleanOptions, RMSynthesisOptions
from spectropol.stages.faraday import (
    export_faraday_fits,
    faraday_fits_names,
    faraday_peaks,
    open_fdf,
    rm_clean,
    rm_synthesis,
)


def two_source_cube(nfreq=48, size=40, sigma=0.005, seed=1):
    """Q, U (nfreq, size, size): two point-like polarised sources on noise, with their truth."""
    rng = np.random.default_rng(seed)
    freqs = np.linspace(120e6, 180e6, nfreq)
    l2 = lambda_squared(freqs)
    q = sigma * rng.standard_normal((nfreq, size, size)).astype(np.float32)
    u = sigma * rng.standard_normal((nfreq, size, size)).astype(np.float32)
    truth = [(3, 4, 0.4, 3.2, 25.0), (size - 5, size - 7, 0.25, -5.6, 120.0)]  # x, y, P, RM, chi0
    for x, y, p, rm, chi0 in truth:
        pol = p * np.exp(2j * (np.deg2rad(chi0) + rm * l2))
        q[:, y, x] += pol.real
        u[:, y, x] += pol.imag
    rms = np.full((nfreq, 4), sigma, np.float32)
    return freqs, q, u, rms, truth


def test_tiled_synthesis_equals_whole_array_synthesis(tmp_path):
    freqs, q, u, rms, _ = two_source_cube()
    q[5, :3, :] = np.nan  # a few pixels lose a channel
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    rm_synthesis(tmp_path / "cube.zarr", tmp_path / "fdf.zarr", tmp_path / "qa.json",
                 RMSynthesisOptions(weighting="uniform", chunk_mb=0.5))
    fdf = open_fdf(tmp_path / "fdf.zarr")
    assert fdf["fdf"].data.chunksize[1] < 40  # really tiled
    grid = faraday_grid(freqs)
    whole = rm_synthesis_block(q.reshape(len(freqs), -1), u.reshape(len(freqs), -1), grid).reshape(-1, 40, 40)
    np.testing.assert_allclose(fdf["fdf"].values, whole, atol=1e-6)
    np.testing.assert_allclose(fdf["phi"].values, grid.phi)


def test_distributed_scheduler_gives_the_same_fdf(tmp_path):
    distributed = pytest.importorskip("distributed")
    freqs, q, u, rms, _ = two_source_cube(nfreq=16, size=24)
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    rm_synthesis(tmp_path / "cube.zarr", tmp_path / "local.zarr", tmp_path / "a.json", RMSynthesisOptions(chunk_mb=0.2))
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        rm_synthesis(tmp_path / "cube.zarr", tmp_path / "remote.zarr", tmp_path / "b.json",
                     RMSynthesisOptions(chunk_mb=0.2),
                     DaskOptions(scheduler=cluster.scheduler_address))
    np.testing.assert_array_equal(open_fdf(tmp_path / "local.zarr")["fdf"].values,
                                  open_fdf(tmp_path / "remote.zarr")["fdf"].values)


def test_matches_rmtools_rmsynth3d(tmp_path):
    rmtools = pytest.importorskip("RMtools_3D.do_RMsynth_3D", reason="rm-tools not installed")
    freqs, q, u, rms, _ = two_source_cube(nfreq=32, size=20)
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    rm_synthesis(tmp_path / "cube.zarr", tmp_path / "fdf.zarr", tmp_path / "qa.json",
                 RMSynthesisOptions(weighting="uniform"))
    ours = open_fdf(tmp_path / "fdf.zarr")
    theirs, phi, *_ = rmtools.run_rmsynth(q, u, freqs, weightType="uniform", verbose=False, not_rmsf=True)
    np.testing.assert_allclose(ours["phi"].values, phi, atol=1e-9)
    peak = np.abs(theirs).max()
    assert np.abs(ours["fdf"].values - theirs).max() < 1e-4 * peak


def test_clean_peaks_and_fits_products(tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    freqs, q, u, rms, truth = two_source_cube()
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    rm_synthesis(tmp_path / "cube.zarr", tmp_path / "dirty.zarr", tmp_path / "s.json", RMSynthesisOptions(chunk_mb=1))
    stats = rm_clean(tmp_path / "dirty.zarr", tmp_path / "clean.zarr", tmp_path / "c.json", RMCleanOptions(chunk_mb=1))
    assert stats.components > 0
    faraday_peaks(tmp_path / "clean.zarr", tmp_path / "peaks.zarr", tmp_path / "p.json", PeaksOptions(chunk_mb=1),
                  cube_store=tmp_path / "cube.zarr")
    peaks = open_fdf(tmp_path / "peaks.zarr")
    assert peaks.attrs["peak"] == "exact"
    for x, y, p, rm, chi0 in truth:
        assert abs(peaks["peak_phi"].values[y, x] - rm) < 3 * peaks["peak_phi_err"].values[y, x]
        assert peaks["peak_pi_debiased"].values[y, x] == pytest.approx(p,
                                                                       abs=3 * float(peaks["fdf_noise"].values[y, x]))
        angle_error = (peaks["pol_angle0_deg"].values[y, x] - chi0 + 90) % 180 - 90
        assert abs(angle_error) < 3 * peaks["pol_angle0_err_deg"].values[y, x]
    # noise pixels: the robust noise from the residual agrees with the channel noise / sqrt(N)
    assert np.nanmedian(peaks["fdf_noise"].values) == pytest.approx(0.005 / np.sqrt(len(freqs)), rel=0.2)

    paths = {name: tmp_path / f"{name}.fits" for name in faraday_fits_names(clean=True)}
    # Every product must have a path: one left out is an error, not a product silently skipped.
    with pytest.raises(ValueError, match="missing for \\['peak_pi'\\]"):
        export_faraday_fits(tmp_path / "dirty.zarr", tmp_path / "clean.zarr", tmp_path / "peaks.zarr",
                            {k: v for k, v in paths.items() if k != "peak_pi"})
    export_faraday_fits(tmp_path / "dirty.zarr", tmp_path / "clean.zarr", tmp_path / "peaks.zarr", paths)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(paths["fdf_dirty_amplitude"]) as hdus:
            header, cube = hdus[0].header, hdus[0].data.copy()
            wcs = WCS(header)
        peak_map = fits.getdata(paths["peak_phi"])
        rmsf_table = fits.getdata(paths["rmsf"], "RMSF")
    assert list(wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN", "FARDEPTH"]
    assert header["CUNIT3"].strip() == "rad/m2"
    dirty = open_fdf(tmp_path / "dirty.zarr")
    np.testing.assert_allclose(cube, np.abs(dirty["fdf"].values), rtol=1e-6)
    np.testing.assert_allclose(wcs.sub([3]).wcs_pix2world(np.arange(3), 0)[0], dirty["phi"].values[:3], atol=1e-9)
    np.testing.assert_array_equal(peak_map, peaks["peak_phi"].values)
    assert np.abs(rmsf_table["AMPLITUDE"]).max() == pytest.approx(1.0, abs=1e-6)
