"""Observations as telescopes deliver them: one MS per subband, in either frequency order, several
spectral windows, a channel whose CLEAN diverges, one channel, fields that reach the horizon,
feeds that turn with the parallactic angle. Each gives products, or a one-line refusal before
any job runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ms_tools import add_spectral_window, read_ms, write_subband
from test_incremental import scale_channels

from conftest import REPO, channel_path, job_counts, run_snakemake, source_pixel

SMALL = {"imaging": {"size": 128, "cell_arcsec": 60.0}, "clean": {"niter": 200}, "cube": {"chunk": 64},
         "faraday": {"chunk_mb": 16}}


def run(workdir: Path, ms, *args, check: bool = True, **sections):
    """The workflow on ``ms`` (a path, a glob pattern, or a list) with the small images of SMALL."""
    config = json.loads(json.dumps(SMALL))
    config["input"] = {"ms": [str(m) for m in ms] if isinstance(ms, (list, tuple)) else str(ms)}
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return run_snakemake(workdir, "--configfile", str(workdir / "config.yaml"), *args, check=check)


def one_line_error(result) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("spectropol: error: ")]
    assert lines, result.stderr[-3000:]
    return lines[0][len("spectropol: error: "):]


def products(workdir: Path) -> dict[str, np.ndarray]:
    import xarray as xr
    from astropy.table import Table

    cube = xr.open_zarr(workdir / "results/cube/cube.zarr")
    peaks = xr.open_zarr(workdir / "results/faraday/peaks.zarr")
    catalogue = Table.read(workdir / "results/catalogue/catalogue.ecsv")
    return {"freq": cube["freq"].values, "restored": cube["restored"].values, "rms": cube["rms"].values,
            **{f"peaks.{name}": peaks[name].values for name in ("peak_pi", "peak_phi", "snr")},
            **{f"catalogue.{name}": np.asarray(catalogue[name]) for name in ("ra", "dec", "rm", "polint", "stokesI")}}


@pytest.fixture
def whole_ms(small_ms):
    return small_ms("whole.ms", nchan=16, chan_width_hz=1e6, ntimes=6, noise_jy=0.05)


@pytest.mark.slow
def test_subband_measurement_sets_give_the_products_of_one_ms(whole_ms, tmp_path):
    run(tmp_path / "one", whole_ms)
    source = read_ms(whole_ms)
    subbands = tmp_path / "subbands"
    subbands.mkdir()
    for k in range(4):  # SB1 in decreasing frequency, as some correlators write it
        write_subband(source, subbands / f"SB{k}.ms", slice(4 * k, 4 * k + 4), reverse=k == 1)
    run(tmp_path / "four", str(subbands / "SB*.ms"))
    one, four = products(tmp_path / "one"), products(tmp_path / "four")
    assert np.all(np.diff(four["freq"]) > 0) and len(four["freq"]) == 16
    for name in one:
        np.testing.assert_allclose(four[name], one[name], rtol=1e-6, atol=1e-7, err_msg=name)
    import xarray as xr

    cube = xr.open_zarr(tmp_path / "four/results/cube/cube.zarr")
    assert cube["source_ms"].values.tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert cube["source_channel"].values[4:8].tolist() == [3, 2, 1, 0]  # SB1's channels, reversed back
    assert cube.attrs["inputs"][1] == str(subbands / "SB1.ms")

    # One subband re-delivered, at another path, with one channel changed: its blocks only.
    redelivered = tmp_path / "redelivered/SB2.ms"
    shutil.copytree(subbands / "SB2.ms", redelivered)
    scale_channels(redelivered, [1], 1.5)
    inputs = [subbands / "SB0.ms", subbands / "SB1.ms", redelivered, subbands / "SB3.ms"]
    counts = job_counts(run(tmp_path / "four", inputs))
    blocks_of_sb2 = len({p.parent.name for p in (tmp_path / "four/results/channels").glob("*/0000[89].zarr")} |
                        {p.parent.name for p in (tmp_path / "four/results/channels").glob("*/0001[01].zarr")})
    assert counts["fingerprint_ms"] == 1  # only the re-delivered MS is looked at again
    assert counts["split_channel"] == counts["image_channel"] == blocks_of_sb2
    # in those blocks only the changed channel is imaged again, so the cube rewrites one plane, and
    # names the re-delivered MS as the source of all four of its channels
    assert json.loads((tmp_path / "four/results/qa/cube.json").read_text())["planes_written"] == 1
    assert xr.open_zarr(tmp_path / "four/results/cube/cube.zarr").attrs["inputs"][2] == str(redelivered)


@pytest.mark.slow
def test_all_spectral_windows_join_in_frequency_order(small_ms, tmp_path):
    ms = small_ms()
    add_spectral_window(ms, 50e6)  # used by the second half of the rows
    import xarray as xr

    run(tmp_path, ms, input={"ms": str(ms), "spw": "all"})
    cube = xr.open_zarr(tmp_path / "results/cube/cube.zarr")
    np.testing.assert_allclose(cube["freq"].values / 1e6, [120, 122, 124, 126, 128, 130, 170, 172, 174, 176, 178, 180])
    assert cube["source_spw"].values.tolist() == [0] * 6 + [1] * 6
    assert np.isfinite(cube["restored"].sel(stokes="I").values).all()


def test_overlapping_subbands_and_other_phase_centres_are_refused_before_any_job(whole_ms, tmp_path):
    source = read_ms(whole_ms)
    a = write_subband(source, tmp_path / "a.ms", slice(0, 8))
    b = write_subband(source, tmp_path / "b.ms", slice(6, 12))
    far = write_subband(source, tmp_path / "far.ms", slice(8, 16), ra_offset_rad=np.deg2rad(0.1))
    overlap = run(tmp_path / "overlap", [a, b], "-n", check=False)
    assert overlap.returncode != 0
    assert one_line_error(overlap) == (f"{a} (spw 0) and {b} (spw 0): channels share the frequency 126.000000 MHz; "
                                       "give each frequency once")
    pointing = run(tmp_path / "pointing", [a, far], "-n", check=False)
    assert pointing.returncode != 0
    assert "phase centres are 311.8 arcsec apart (more than input.phase_centre_tolerance_arcsec = 1)" in \
        one_line_error(pointing)
    for name in ("overlap", "pointing"):
        assert not (tmp_path / name / "work").exists() and not (tmp_path / name / "results").exists()


@pytest.mark.slow
def test_a_diverging_channel_is_reported_and_the_run_goes_on(small_ms, tmp_path):
    from casacore.tables import table

    ms = small_ms(nchan=4)
    # Channel 1 keeps its cross-hands on 2% of the rows: its Q and U see another PSF than the one
    # CLEAN subtracts, and the Q+U residual grows from one major cycle to the next.
    with table(str(ms), readonly=False, ack=False) as t:
        flags = t.getcol("FLAG")
        flags[np.random.default_rng(0).random(len(flags)) > 0.02, 1, 1:3] = True
        t.putcol("FLAG", flags)
    import xarray as xr

    run(tmp_path, ms, clean={"niter": 1000})
    qa = json.loads(channel_path(tmp_path, "results/qa/image", 1).read_text())
    assert qa["clean"]["diverged"] and qa["clean"]["diverged_stokes"] == ["Q+U"]
    cube = xr.open_zarr(tmp_path / "results/cube/cube.zarr")
    assert cube["clean_diverged"].values.tolist() == [False, True, False, False]
    summary = json.loads((tmp_path / "results/qa/summary.json").read_text())
    assert summary["diverged_cleans"] == [1]
    assert json.loads((tmp_path / "results/qa/cube.json").read_text())["diverged_channels"] == [1]
    # and for those who want it, divergence fails the job, in one line
    failed = run(tmp_path / "strict", ms, check=False, clean={"niter": 1000, "on_divergence": "error"})
    assert failed.returncode != 0 and "CLEAN diverged in Stokes Q+U: the residual peak grew" in one_line_error(failed)


@pytest.mark.slow
def test_one_channel_skips_the_faraday_stages(small_ms, tmp_path):
    ms = small_ms(nchan=1)
    result = run(tmp_path, ms)
    assert "1 channel to image; RM synthesis needs at least 2" in result.stdout + result.stderr
    assert (tmp_path / "results/cube/cube.zarr").exists() and (tmp_path / "results/cube/cube_I.fits").exists()
    assert not (tmp_path / "results/faraday").exists() and not (tmp_path / "results/moments").exists()


@pytest.mark.slow
def test_an_automatic_field_at_30_mhz_on_a_100_m_array_stays_inside_the_horizon(small_ms, tmp_path):
    import xarray as xr
    from astropy.table import Table

    rng = np.random.default_rng(4)
    stations = {f"S{k}": [float(x), float(y), 0.0] for k, (x, y) in enumerate(rng.uniform(-50, 50, (8, 2)))}
    layout = tmp_path / "small_array.yaml"
    layout.write_text(yaml.safe_dump({"telescope": "compact", "dish_diameter_m": 2.0, "stations": stations,
                                      "location": {"longitude_deg": 21.4, "latitude_deg": -30.7, "height_m": 1000.0}}))
    from spectropol.stages.simulate import simulate_ms

    ms = tmp_path / "low.ms"
    simulate_ms(ms, REPO / "resources/skymodels/demo.yaml", layout, ra_deg=60.0, dec_deg=-30.0, start_freq_hz=30e6,
                chan_width_hz=0.5e6, nchan=4, ntimes=8, integration_s=10.0, hour_angle_span_h=4.0, noise_jy=0.01)
    result = run(tmp_path / "run", ms, imaging={"size": 256, "cell_arcsec": None})
    assert "beyond the horizon of the SIN projection" in result.stdout + result.stderr
    geometry = json.loads((tmp_path / "run/work/ms/selection.json").read_text())["geometry"]
    assert geometry["npix"] * geometry["cell_rad"] / 2 <= 1.0 and geometry["npix"] < 256
    cube = xr.open_zarr(tmp_path / "run/results/cube/cube.zarr")
    image = cube["restored"].sel(stokes="I").values[0]
    npix = geometry["npix"]
    y, x = np.mgrid[0:npix, 0:npix]
    outside = ((x - npix // 2) ** 2 + (y - npix // 2) ** 2) * geometry["cell_rad"] ** 2 >= 1.0
    assert outside.any() and np.isnan(image[outside]).all() and np.isfinite(image[~outside]).all()
    catalogue = Table.read(tmp_path / "run/results/catalogue/catalogue.ecsv")
    assert np.isfinite(catalogue["ra"]).all() and np.isfinite(catalogue["dec"]).all()


def test_parallactic_derotation_recovers_the_sky_polarisation(tmp_path, demo_sky):
    import xarray as xr

    from conftest import dirty_settings, image_geometry
    from spectropol.io.ms import select_data
    from spectropol.options import SplitOptions
    from spectropol.stages.image import image_channel
    from spectropol.stages.inspect import inspect_ms
    from spectropol.stages.simulate import simulate_ms
    from spectropol.stages.split import split_block

    ms = tmp_path / "altaz.ms"
    simulate_ms(ms, REPO / "resources/skymodels/demo.yaml", REPO / "resources/layouts/ska_low_like.yaml", ra_deg=60.0,
                dec_deg=-30.0, start_freq_hz=150e6, chan_width_hz=1e6, nchan=1, ntimes=24, integration_s=10.0,
                hour_angle_span_h=8.0, noise_jy=0.01, parallactic_rotation=True)
    inspect_ms([(str(ms), [0])], tmp_path / "selection.json")
    geometry = image_geometry(select_data(str(ms)), 256, 40.0)
    measured = {}
    for derotate in (False, True):
        folder = tmp_path / f"derotate_{derotate}"
        split_block(tmp_path / "selection.json", str(ms), 0, 0, [0], [0], folder / "vis", folder / "qa", width=5,
                    options=SplitOptions(derotate_parallactic_angle=derotate))
        image_channel(folder / "vis/00000.zarr", folder / "image.zarr", folder / "image.json", geometry,
                      dirty_settings())
        measured[derotate] = xr.open_zarr(folder / "image.zarr")["dirty"].values
    reference_hz, sources = demo_sky
    polarised = [s for s in sources if s.pol_fraction > 0]
    for source in polarised:
        x, y = source_pixel(source, 256, 40.0)
        truth = source.stokes(np.array([150e6]), reference_hz)
        p = np.hypot(truth["Q"][0], truth["U"][0])
        # derotated: Q and U as on the sky, within 5% of P (the other sources' sidelobes)
        for k, s in ((1, "Q"), (2, "U")):
            assert abs(measured[True][k, y, x] - truth[s][0]) < 0.05 * p, (source.name, s)
        # not derotated: an 8-hour track through transit turns the feeds by tens of degrees, so
        # the polarisation is smeared and its angle is off
        assert abs(measured[False][1, y, x] - truth["Q"][0]) + abs(measured[False][2, y, x] - truth["U"][0]) > 0.1 * p


def test_parallactic_derotation_needs_a_known_mount(small_ms, tmp_path):
    from spectropol.errors import SpectropolError
    from spectropol.options import SplitOptions
    from spectropol.stages.inspect import inspect_ms
    from spectropol.stages.split import split_block

    ms = small_ms()  # the simulator's fixed feeds are written as X-Y mounts
    inspect_ms([(str(ms), [0])], tmp_path / "selection.json")
    with pytest.raises(SpectropolError, match=r"small.ms: ANTENNA::MOUNT is 'x-y': the parallactic angle is known "
                                              r"only for alt-az \(and equatorial\) mounts"):
        split_block(tmp_path / "selection.json", str(ms), 0, 0, [0], [0], tmp_path / "v", tmp_path / "q", width=5,
                    options=SplitOptions(derotate_parallactic_angle=True))
