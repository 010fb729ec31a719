"""The one-pass Faraday-depth stage on cubes: tiling, what it keeps, the Dask scheduler choice,
RM-Tools agreement, FITS, and its memory against its request."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import write_test_cube
from spectropol.kernels.faraday import faraday_grid, lambda_squared, rm_synthesis_block
from spectropol.options import DaskOptions, FaradayProductsOptions, RMCleanOptions, RMSynthesisOptions
from spectropol.stages.faraday import (
    FARADAY_STORES,
    PEAK_MAPS,
    candidate_spectrum,
    export_faraday_fits,
    faraday_depth,
    faraday_depth_mem_mb,
    faraday_fits_names,
    faraday_store_names,
    open_fdf,
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


def run_faraday(tmp_path, name, clean=RMCleanOptions(), products=FaradayProductsOptions(), dask=DaskOptions(),
                **synthesis):
    out = {kind: tmp_path / name / FARADAY_STORES[kind] for kind in faraday_store_names(products, clean is not None)}
    result = faraday_depth(tmp_path / "cube.zarr", out, tmp_path / name / "qa.json", RMSynthesisOptions(**synthesis),
                           clean, products, dask)
    return result, {kind: open_fdf(path) for kind, path in out.items()}


def test_tiled_one_pass_equals_whole_array_synthesis(tmp_path):
    freqs, q, u, rms, truth = two_source_cube()
    q[5, :3, :] = np.nan  # a few pixels lose a channel
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    result, stores = run_faraday(tmp_path, "kept", products=FaradayProductsOptions(save_fdf=True),
                                 weighting="uniform", chunk_mb=0.5)
    assert result.tiles > 1  # really tiled
    grid = faraday_grid(freqs)
    whole = rm_synthesis_block(q.reshape(len(freqs), -1), u.reshape(len(freqs), -1), grid).reshape(-1, 40, 40)
    np.testing.assert_allclose(stores["fdf_dirty"]["fdf"].values, whole, atol=1e-6)
    np.testing.assert_allclose(stores["peaks"]["phi"].values, grid.phi)
    # The candidates are the local maxima of peak PI (3 x 3 without a beam) at or above candidate_snr,
    # with their own columns of the cubes. Maxima are found within a tile, so a tile's edge pixel
    # may be one beside a brighter pixel of the next tile: every maximum of the whole map is kept,
    # and nothing below candidate_snr.
    from scipy.ndimage import maximum_filter

    peaks, candidates = stores["peaks"], stores["candidates"]
    pi, snr = peaks["peak_pi"].values, peaks["snr"].values
    bright = snr >= result.candidate_snr
    whole_map_maxima = set(map(tuple, np.argwhere(bright & (pi == maximum_filter(pi, size=3, mode="nearest")))))
    got = set(zip(candidates["y"].values.tolist(), candidates["x"].values.tolist()))
    assert whole_map_maxima <= got <= set(map(tuple, np.argwhere(bright)))
    assert len(got) == result.candidates >= 2 and {(y, x) for x, y, *_ in truth} <= got
    for x, y, *_ in truth:
        np.testing.assert_array_equal(candidate_spectrum(candidates, y, x, "fdf_clean"),
                                      stores["fdf_clean"]["fdf_clean"].values[:, y, x])
    assert candidate_spectrum(candidates, 20, 20) is None  # a noise pixel keeps no spectrum
    # Without save_fdf the same maps and candidates, and no cube written.
    lean, stores_lean = run_faraday(tmp_path, "lean", weighting="uniform", chunk_mb=0.5)
    assert set(stores_lean) == {"peaks", "candidates"} and not (tmp_path / "lean" / "fdf_dirty.zarr").exists()
    for name in PEAK_MAPS:
        np.testing.assert_array_equal(stores_lean["peaks"][name].values, peaks[name].values)
    np.testing.assert_array_equal(stores_lean["candidates"]["fdf_clean"].values, candidates["fdf_clean"].values)
    assert sum(lean.bytes.values()) < 0.2 * sum(result.bytes.values())


def test_distributed_scheduler_gives_the_same_products(tmp_path):
    distributed = pytest.importorskip("distributed")
    freqs, q, u, rms, _ = two_source_cube(nfreq=16, size=24)
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    _, local = run_faraday(tmp_path, "local", chunk_mb=0.2)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        _, remote = run_faraday(tmp_path, "remote", dask=DaskOptions(scheduler=cluster.scheduler_address),
                                chunk_mb=0.2)
    for name in PEAK_MAPS:
        np.testing.assert_array_equal(local["peaks"][name].values, remote["peaks"][name].values)
    np.testing.assert_array_equal(local["candidates"]["fdf_clean"].values, remote["candidates"]["fdf_clean"].values)


def test_a_dask_cluster_of_separate_processes_gives_the_same_products(tmp_path):
    """What a user starts by hand or from a job script: `dask scheduler` and two `dask worker`
    processes on 127.0.0.1, the stage pointed at the scheduler (dask.scheduler: tcp://...): the
    peak maps and kept spectra are identical to the threaded run's."""
    import shutil
    import time

    distributed = pytest.importorskip("distributed")
    dask_command = shutil.which("dask", path=str(Path(sys.executable).parent))
    if dask_command is None:
        pytest.skip("the dask command line (distributed) is not installed")
    freqs, q, u, rms, _ = two_source_cube(nfreq=16, size=24)
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    _, local = run_faraday(tmp_path, "local", chunk_mb=0.2)
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    processes = [subprocess.Popen([dask_command, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--scheduler-file", str(scheduler_file), *common],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        processes += [subprocess.Popen([dask_command, "worker", "--scheduler-file", str(scheduler_file),
                                        "--nthreads", "1", "--memory-limit", "1GB", *common],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        _, remote = run_faraday(tmp_path, "cluster", dask=DaskOptions(scheduler=address), chunk_mb=0.2)
        with distributed.Client(address, timeout=60) as client:  # the tasks ran there, on both workers
            executed = client.run(lambda dask_worker: len(dask_worker.state.log))
        assert len(executed) == 2 and all(count > 0 for count in executed.values()), executed
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    for name in PEAK_MAPS:
        np.testing.assert_array_equal(local["peaks"][name].values, remote["peaks"][name].values)
    np.testing.assert_array_equal(local["candidates"]["fdf_clean"].values, remote["candidates"]["fdf_clean"].values)


@pytest.mark.parametrize("nfreq,route", [(32, "SymmetricSynthesis"), (128, "FourierSynthesis")])
def test_matches_rmtools_rmsynth3d(tmp_path, nfreq, route):
    # both synthesis routes of the pass (the matrix product; on this band's FWHM/10 grid at 128
    # channels the non-uniform FFT) against rmsynth3d on the same cube
    from spectropol.kernels.faraday import faraday_grid, synthesis_operator

    rmtools = pytest.importorskip("RMtools_3D.do_RMsynth_3D", reason="rm-tools not installed")
    freqs, q, u, rms, _ = two_source_cube(nfreq=nfreq, size=20)
    assert type(synthesis_operator(faraday_grid(freqs))).__name__ == route
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    _, ours = run_faraday(tmp_path, "ours", clean=None, products=FaradayProductsOptions(save_fdf=True),
                          weighting="uniform")
    theirs, phi, *_ = rmtools.run_rmsynth(q, u, freqs, weightType="uniform", verbose=False, not_rmsf=True)
    np.testing.assert_allclose(ours["peaks"]["phi"].values, phi, atol=1e-9)
    peak = np.abs(theirs).max()
    assert np.abs(ours["fdf_dirty"]["fdf"].values - theirs).max() < 1e-4 * peak
    # the candidates' spectra are the same numbers as the cube's
    y, x = ours["candidates"]["y"].values, ours["candidates"]["x"].values
    assert np.abs(ours["candidates"]["fdf_dirty"].values - theirs[:, y, x].T).max() < 1e-4 * peak



def test_candidate_rows_are_stored_in_whole_shards_in_the_order_given(tmp_path):
    # rows arrive a tile at a time in uneven numbers, across shard boundaries; they are stored in
    # order, a whole shard at a time but the last, which holds only its rows' chunks
    import zarr

    from spectropol.io.stores import build_store
    from spectropol.stages.faraday import _RowAppender

    rng = np.random.default_rng(3)
    spectra = (rng.standard_normal((1000, 7)) + 1j * rng.standard_normal((1000, 7))).astype(np.complex64)
    snr = rng.uniform(5, 50, 1000).astype(np.float32)
    with build_store(tmp_path / "c.zarr", {"kind": "candidates"}) as builder:
        arrays = {"fdf_dirty": builder.array("fdf_dirty", ("pixel", "phi"), (0, 7), np.complex64, chunks=(16, 7),
                                             shards=(64, 7), raw=True),
                  "snr": builder.array("snr", ("pixel",), (0,), np.float32, chunks=(64,))}
        appender = _RowAppender(arrays, 64)
        start = 0
        for size in (0, 1, 63, 64, 130, 5, 300, 437):
            appender.add({"fdf_dirty": spectra[start:start + size], "snr": snr[start:start + size]})
            start += size
            assert arrays["snr"].shape[0] == start // 64 * 64  # nothing partial written yet
        appender.flush()
    stored = zarr.open_group(str(tmp_path / "c.zarr"), mode="r")
    np.testing.assert_array_equal(stored["fdf_dirty"][...], spectra)
    np.testing.assert_array_equal(stored["snr"][...], snr)
    shards = sorted((tmp_path / "c.zarr" / "fdf_dirty" / "c").rglob("*"), key=lambda f: f.stat().st_size)
    shards = [f for f in shards if f.is_file()]
    # 15 whole shards and the last (1000 = 15 x 64 + 40 rows: three 16-row chunks of its four)
    assert len(shards) == 16 and shards[0].stat().st_size < 0.8 * shards[-1].stat().st_size


def test_clean_peaks_and_fits_products(tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    freqs, q, u, rms, truth = two_source_cube()
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, rms)
    products = FaradayProductsOptions(save_fdf=True, fdf_fits=True)
    result, stores = run_faraday(tmp_path, "f", products=products, chunk_mb=1)
    assert result.clean["components"] > 0 and result.from_fdf == "clean"
    peaks = stores["peaks"]
    assert peaks.attrs["peak"] == "exact"
    for x, y, p, rm, chi0 in truth:
        assert abs(peaks["peak_phi"].values[y, x] - rm) < 3 * peaks["peak_phi_err"].values[y, x]
        assert peaks["peak_pi_debiased"].values[y, x] == pytest.approx(p,
                                                                       abs=3 * float(peaks["fdf_noise"].values[y, x]))
        angle_error = (peaks["pol_angle0_deg"].values[y, x] - chi0 + 90) % 180 - 90
        assert abs(angle_error) < 3 * peaks["pol_angle0_err_deg"].values[y, x]
    # noise pixels: the robust noise from the residual agrees with the channel noise / sqrt(N)
    assert np.nanmedian(peaks["fdf_noise"].values) == pytest.approx(0.005 / np.sqrt(len(freqs)), rel=0.2)
    qa = json.loads((tmp_path / "f" / "qa.json").read_text())
    assert qa["kind"] == "faraday_depth" and qa["bytes"]["fdf_dirty"] > qa["bytes"]["peaks"] > 0

    assert "fdf_dirty_real" not in faraday_fits_names(FaradayProductsOptions(), clean=True)  # default: maps only
    paths = {name: tmp_path / f"{name}.fits" for name in faraday_fits_names(products, clean=True)}
    stores_given = {"dirty_store": tmp_path / "f/fdf_dirty.zarr", "clean_store": tmp_path / "f/fdf_clean.zarr"}
    # Every product must have a path: one left out is an error, not a product silently skipped.
    with pytest.raises(ValueError, match="missing for \\['peak_pi'\\]"):
        export_faraday_fits(tmp_path / "f/peaks.zarr", {k: v for k, v in paths.items() if k != "peak_pi"},
                            **stores_given)
    export_faraday_fits(tmp_path / "f/peaks.zarr", paths, **stores_given)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(paths["fdf_dirty_amplitude"]) as hdus:
            header, cube = hdus[0].header, hdus[0].data.copy()
            wcs = WCS(header)
        peak_map = fits.getdata(paths["peak_phi"])
        rmsf_table = fits.getdata(paths["rmsf"], "RMSF")
    assert list(wcs.wcs.ctype) == ["RA---SIN", "DEC--SIN", "FARDEPTH"]
    assert header["CUNIT3"].strip() == "rad/m2"
    dirty = stores["fdf_dirty"]
    np.testing.assert_allclose(cube, np.abs(dirty["fdf"].values), rtol=1e-6)
    np.testing.assert_allclose(wcs.sub([3]).wcs_pix2world(np.arange(3), 0)[0], dirty["phi"].values[:3], atol=1e-9)
    np.testing.assert_array_equal(peak_map, peaks["peak_phi"].values)
    assert np.abs(rmsf_table["AMPLITUDE"]).max() == pytest.approx(1.0, abs=1e-6)


# Peak RSS from /proc (VmHWM, this process image's own): getrusage's ru_maxrss would include the
# RSS of the parent at the fork, the large test process that made the cube.
MEMORY_PROBE = """
import json, re, sys
from spectropol.options import DaskOptions, RMSynthesisOptions
from spectropol.stages.faraday import faraday_depth
out = {"peaks": sys.argv[2] + "/peaks.zarr", "candidates": sys.argv[2] + "/fdf_candidates.zarr"}
result = faraday_depth(sys.argv[1], out, sys.argv[2] + "/qa.json", RMSynthesisOptions(dphi_rad_m2=0.5,
                       phi_max_rad_m2=160.0), dask=DaskOptions(threads=2))
status = open("/proc/self/status").read()
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
print(json.dumps({"peak_mb": peak_kb / 1024, "tile_px": result.tile_px, "region_px": result.region_px,
                  "maps_region_px": result.maps_region_px, "nphi": result.faraday_grid["nphi"]}))
"""


@pytest.mark.slow
def test_memory_of_a_1024_cube_stays_below_its_request(tmp_path):
    """The request the workflow makes for faraday_depth (from the tile size) against the peak RSS
    of the stage on a 1024^2 cube at the issue's grid (641 depths), in a process of its own."""
    nfreq, size = 24, 1024
    rng = np.random.default_rng(3)
    freqs = np.linspace(120e6, 168e6, nfreq)
    q = (0.001 * rng.standard_normal((nfreq, size, size))).astype(np.float32)
    u = (0.001 * rng.standard_normal((nfreq, size, size))).astype(np.float32)
    l2 = lambda_squared(freqs)
    for k in range(40):  # sources, so that RM-CLEAN and the refinement have work
        y, x = rng.integers(0, size, 2)
        pol = 0.05 * np.exp(2j * (rng.uniform(-40, 40) * l2))
        q[:, y, x] += pol.real
        u[:, y, x] += pol.imag
    write_test_cube(tmp_path / "cube.zarr", q, u, freqs, np.full((nfreq, 4), 0.001, np.float32), chunk=256)
    del q, u
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "cube.zarr"), str(tmp_path / "out")],
                         capture_output=True, text=True, check=True)
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    request = faraday_depth_mem_mb(nfreq, measured["nphi"], measured["tile_px"], clean=True, threads=2,
                                   region_px=measured["region_px"], maps_region_px=measured["maps_region_px"])
    assert measured["nphi"] == 641
    assert measured["peak_mb"] <= request, (measured, request)
