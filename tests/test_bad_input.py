"""Unusual and broken Measurement Sets: each is processed correctly or refused with one line that
names the file and the problem, and never leaves a product that looks complete."""

import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml
from casacore.tables import table

from conftest import REPO, SNAKEMAKE, run_snakemake
from spectropol.errors import SpectropolError
from spectropol.io.channels import read_channel_vis
from spectropol.io.ms import select_data
from spectropol.stages.split import split_channel

SMALL_IMAGES = {"imaging": {"size": 64, "cell_arcsec": 60.0}, "cube": {"chunk": 64}, "faraday": {"chunk_mb": 8}}


def run_on(tmp_path, ms, extra=None, *args, check=False):
    config = {"input": {"ms": str(ms)}} | SMALL_IMAGES | (extra or {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return run_snakemake(tmp_path, "--configfile", str(path), *args, check=check)


def one_line_error(result) -> str:
    """The spectropol error line of a failed run (our scripts print exactly one per failure)."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("spectropol: error: ")]
    assert lines, result.stderr[-3000:]
    return lines[0]


def test_every_channel_flagged_is_refused_and_leaves_no_cube(small_ms, tmp_path):
    ms = small_ms()
    with table(str(ms), readonly=False, ack=False) as t:
        t.putcol("FLAG", np.ones(t.getcol("FLAG").shape, dtype=bool))
    result = run_on(tmp_path, ms)
    assert result.returncode != 0
    assert one_line_error(result) == (f"spectropol: error: {ms}: every one of its 6 channels is flagged or has no "
                                      "positive weight: nothing to image")
    cube_folder = tmp_path / "results/cube"
    assert not cube_folder.exists() or list(cube_folder.iterdir()) == []
    # refused once the fingerprints (which read FLAG) are known: no channel was split or imaged
    assert not (tmp_path / "work/vis").exists() and not (tmp_path / "results/channels").exists()


def test_nonfinite_visibilities_are_flagged_and_counted(small_ms, tmp_path):
    ms = small_ms()
    with table(str(ms), readonly=False, ack=False) as t:
        data = t.getcol("DATA")
        data[:10, 1, 0] = np.nan
        data[10:15, 1, 3] = np.inf
        t.putcol("DATA", data)
    selection = select_data(str(ms))
    stats = split_channel(selection, 1, tmp_path / "v.zarr", tmp_path / "v.json")
    assert stats.nonfinite_visibilities == 15
    arrays, _ = read_channel_vis(tmp_path / "v.zarr")
    assert np.isfinite(arrays["vis"]).all()
    # XX and YY feed I and Q: 15 rows lose those two Stokes parameters
    assert stats.visibilities_usable["I"] == selection.nrows - 15
    assert stats.visibilities_usable["U"] == selection.nrows


def test_zero_and_negative_weights_are_flagged_and_counted(small_ms, tmp_path):
    ms = small_ms()
    with table(str(ms), readonly=False, ack=False) as t:
        weight = t.getcol("WEIGHT")
        weight[:20, 1] = 0.0    # XY
        weight[20:30, 2] = -1.0  # YX
        t.putcol("WEIGHT", weight)
    selection = select_data(str(ms))
    stats = split_channel(selection, 0, tmp_path / "v.zarr", tmp_path / "v.json")
    assert stats.negative_weights == 10
    assert stats.visibilities_usable["U"] == selection.nrows - 30
    assert stats.visibilities_usable["I"] == selection.nrows


def test_unusual_correlation_order_gives_the_same_stokes(small_ms, tmp_path):
    normal = small_ms("normal.ms", noise_jy=1e-7)
    odd = small_ms("odd.ms", noise_jy=1e-7, correlations=("XX", "YY", "XY", "YX"))
    for ms, name in ((normal, "n"), (odd, "o")):
        split_channel(select_data(str(ms)), 2, tmp_path / f"{name}.zarr", tmp_path / f"{name}.json")
    a, _ = read_channel_vis(tmp_path / "n.zarr")
    b, _ = read_channel_vis(tmp_path / "o.zarr")
    np.testing.assert_allclose(a["vis"], b["vis"], atol=1e-5)


def test_two_correlations_give_i_and_q_and_skip_the_faraday_stages(small_ms, tmp_path):
    ms = small_ms(correlations=("XX", "YY"))
    selection = select_data(str(ms))
    stats = split_channel(selection, 0, tmp_path / "v.zarr", tmp_path / "v.json")
    assert stats.stokes_present == ["I", "Q"]
    assert stats.visibilities_usable["U"] == 0 and stats.visibilities_usable["V"] == 0
    workdir = tmp_path / "wf"
    workdir.mkdir()
    dry = run_on(workdir, ms, None, "-n")
    assert dry.returncode == 0
    text = dry.stdout + dry.stderr
    assert "correlations give Stokes I, Q only; Faraday moments and RM synthesis need Q and U and are skipped" in text
    assert "faraday_depth" not in text and "faraday_moments" not in text and "gather_cube" in text


def test_several_fields_must_be_chosen(small_ms):
    ms = small_ms()
    with table(f"{ms}::FIELD", readonly=False, ack=False) as t:
        t.addrows(1)
        t.putcell("PHASE_DIR", 1, t.getcell("PHASE_DIR", 0) + 0.01)
        t.putcell("NAME", 1, "OTHER")
    with table(str(ms), readonly=False, ack=False) as t:
        field = t.getcol("FIELD_ID")
        field[::2] = 1
        t.putcol("FIELD_ID", field)
    with pytest.raises(SpectropolError,
                       match=r"small.ms: has 2 fields \[0, 1\]; choose one with input.field in the config"):
        select_data(str(ms))
    chosen = select_data(str(ms), field=1)
    assert chosen.field_name == "OTHER" and chosen.nrows == select_data(str(ms), field=0).nrows


def test_missing_data_column(small_ms):
    ms = small_ms()
    with table(str(ms), readonly=False, ack=False) as t:
        t.removecols("DATA")
    with pytest.raises(SpectropolError, match=r"small.ms: has no DATA column \(set input.column in the config\)"):
        select_data(str(ms))


def test_missing_subtable(small_ms):
    ms = small_ms()
    shutil.rmtree(ms / "POLARIZATION")
    with pytest.raises(SpectropolError) as error:
        select_data(str(ms))
    message = str(error.value)
    assert message.startswith(f"{ms}: ") and "POLARIZATION" in message and "\n" not in message


@pytest.mark.parametrize("which", range(4))
def test_truncated_table_is_a_one_line_error(small_ms, tmp_path, which):
    # Truncate each of the main table's largest storage files in turn: whichever column lives
    # there, reading fails with one line naming the MS, and no channel store is left behind.
    ms = small_ms()
    data_files = sorted(ms.glob("table.f*"), key=lambda p: p.stat().st_size, reverse=True)
    victim = data_files[which]
    with open(victim, "r+b") as handle:
        handle.truncate(victim.stat().st_size // 3)
    out = tmp_path / "out"
    out.mkdir()
    failed = None
    with pytest.raises(SpectropolError) as error:
        selection = select_data(str(ms))
        for failed in range(len(selection.freqs)):
            split_channel(selection, failed, out / f"v{failed}.zarr", out / f"v{failed}.json")
    message = str(error.value)
    assert message.startswith(f"{ms}: ") and "truncated or damaged" in message and "\n" not in message
    # channels read before the damage are complete; the one that failed left nothing
    if failed is not None:
        assert not (out / f"v{failed}.zarr").exists() and not (out / f"v{failed}.json").exists()
        assert sorted(p.name for p in out.iterdir()) == sorted(f"v{c}.{ext}" for c in range(failed) for ext in ("zarr",
                                                                                                                "json"))


def test_an_unwritable_output_folder_is_refused_before_running(small_ms, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the results should go")
    result = run_on(tmp_path, small_ms(), {"results_dir": str(blocker / "results")}, "-n")
    assert result.returncode != 0
    assert f"{blocker}/results: cannot create results_dir there, {blocker} is a file" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_job_killed_mid_write_is_redone_and_the_products_match_a_clean_run(tiny_run, tmp_path):
    # Kill the whole run (Snakemake and its jobs, SIGKILL) as soon as a channel image is being
    # written; the rerun must redo what was cut short and give the same cube as an untouched run.
    import xarray as xr

    config = ["--configfile", str(REPO / "tests/configs/tiny.yaml")]
    process = subprocess.Popen([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                                *config],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    channels = tmp_path / "results/channels"
    deadline = time.monotonic() + 120
    killed_during_write = False
    while time.monotonic() < deadline and process.poll() is None:
        if channels.exists() and any(channels.glob("*/.*.partial-*")):
            os.killpg(process.pid, signal.SIGKILL)
            killed_during_write = True
            break
        time.sleep(0.002)
    process.wait()
    assert killed_during_write, "the run ended before a channel image was being written"
    # what survived is either complete or clearly partial
    for store in channels.glob("*/*.zarr"):
        assert (store / "zarr.json").exists() and xr.open_zarr(store)["dirty"].shape[0] == 4
    # As after a power cut: release Snakemake's lock, then run again.
    run_snakemake(tmp_path, *config, "--unlock")
    rerun = run_snakemake(tmp_path, *config, "--rerun-incomplete")
    assert "Nothing to be done" not in rerun.stdout + rerun.stderr
    clean = xr.open_zarr(tiny_run / "results/cube/cube.zarr")["restored"].values
    redone = xr.open_zarr(tmp_path / "results/cube/cube.zarr")["restored"].values
    np.testing.assert_array_equal(redone, clean)
    peaks_clean = xr.open_zarr(tiny_run / "results/faraday/peaks.zarr")["peak_phi"].values
    peaks_redone = xr.open_zarr(tmp_path / "results/faraday/peaks.zarr")["peak_phi"].values
    np.testing.assert_array_equal(peaks_redone, peaks_clean)
