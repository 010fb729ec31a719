"""Reruns: exactly the channels whose data or settings changed are reprocessed, and the products
equal those of a fresh run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml

from conftest import job_counts, run_snakemake
from spectropol.io.fingerprint import ms_fingerprints
from spectropol.planning import channel_settings, parse_channel_ranges, plan_blocks

NCHAN = 32
CHANGED = (3, 17, 30)


def scale_channels(ms: Path, channels, factor: float) -> None:
    from casacore.tables import table

    with table(str(ms), readonly=False, ack=False) as main:
        for c in channels:
            data = main.getcolslice("DATA", [c, 0], [c, 3])
            main.putcolslice("DATA", data * factor, [c, 0], [c, 3])


def write_config(workdir: Path, ms: Path, **sections) -> Path:
    config = {
        "input": {"ms": str(ms)},
        "imaging": {"size": 128, "cell_arcsec": 60.0},
        "clean": {"niter": 200},
        "cube": {"chunk": 64},
        "faraday": {"chunk_mb": 16},
        "channels": {"block": 1},  # one channel per job: reruns are counted per channel
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def products(workdir: Path) -> dict[str, np.ndarray]:
    cube = xr.open_zarr(workdir / "results/cube/cube.zarr")
    peaks = xr.open_zarr(workdir / "results/faraday/peaks.zarr")
    return {"cube": cube["restored"].values, "rms": cube["rms"].values, "bmaj": cube["bmaj"].values,
            **{name: peaks[name].values for name in ("peak_pi", "peak_phi")}}


@pytest.fixture
def survey_ms(small_ms):
    return small_ms("survey.ms", nchan=NCHAN, chan_width_hz=1e6, ntimes=6, noise_jy=0.05)


@pytest.mark.slow
def test_rerun_reprocesses_exactly_the_changed_channels(survey_ms, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, survey_ms)
    first = job_counts(run_snakemake(work, "--configfile", str(config)))
    assert first["image_channel"] == NCHAN and first["split_channel"] == NCHAN
    before = {name: mtimes(work / sub) for name, sub in (("images", "results/channels"), ("vis", "work/vis"))}

    scale_channels(survey_ms, CHANGED, 1.25)
    rerun = job_counts(run_snakemake(work, "--configfile", str(config)))
    assert rerun["split_channel"] == len(CHANGED) and rerun["image_channel"] == len(CHANGED)
    assert rerun["gather_cube"] == 1 and rerun.get("inspect_ms", 0) == 0
    changed_names = {f"{c:05d}" for c in CHANGED}
    for name, sub in (("images", "results/channels"), ("vis", "work/vis")):
        after = mtimes(work / sub)
        assert set(after) == set(before[name])
        for path, mtime in after.items():
            block = path.split("/")[0]
            assert (mtime != before[name][path]) == (block in changed_names), path
    cube_qa = json.loads((work / "results/qa/cube.json").read_text())
    assert cube_qa["planes_written"] == len(CHANGED)  # the cube was updated in place

    # The same products as a fresh run on the modified MS.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_snakemake(fresh, "--configfile", str(write_config(fresh, survey_ms)))
    ours, theirs = products(work), products(fresh)
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, atol=1e-7, err_msg=name)

    # Touching every file of the MS changes no content: only the fingerprint job looks at it again
    # (it cannot know without reading), and nothing is reprocessed.
    for path in [survey_ms, *survey_ms.rglob("*")]:
        os.utime(path)
    assert set(job_counts(run_snakemake(work, "--configfile", str(config)))) <= {"fingerprint_ms", "all"}
    # Run again untouched: nothing at all, not even the fingerprint job.
    assert job_counts(run_snakemake(work, "--configfile", str(config))) == {}

    # One channel's override: that channel only.
    config = write_config(work, survey_ms, channels={"overrides": [{"channels": [5], "imaging": {"robust": 0.5}}]})
    counts = job_counts(run_snakemake(work, "--configfile", str(config)))
    assert counts["image_channel"] == 1 and counts.get("split_channel", 0) == 0
    assert json.loads((work / "results/qa/image/00005/00005.json").read_text())["imaging"]["robust"] == 0.5

    # A global imaging parameter: every channel (channel 5 keeps its robust, but not its weighting).
    config = write_config(work, survey_ms, imaging={"weighting": "natural"},
                          channels={"overrides": [{"channels": [5], "imaging": {"robust": 0.5}}]})
    counts = job_counts(run_snakemake(work, "--configfile", str(config)))
    assert counts["image_channel"] == NCHAN and counts.get("split_channel", 0) == 0


@pytest.mark.slow
def test_blocks_rerun_as_a_unit_and_a_redelivered_ms_reruns_its_changes(survey_ms, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    config = write_config(work, survey_ms, channels={"block": 8, "exclude": ["28-31"]}, faraday={"clean": False})
    first = job_counts(run_snakemake(work, "--configfile", str(config)))
    assert first["image_channel"] == 4 and first["split_channel"] == 4
    cube = xr.open_zarr(work / "results/cube/cube.zarr")
    assert cube.sizes["freq"] == NCHAN and cube.attrs["excluded_channels"] == [28, 29, 30, 31]
    assert np.isnan(cube["restored"].isel(freq=slice(28, 32)).values).all()
    assert np.isfinite(cube["restored"].isel(freq=slice(0, 28), stokes=0).values).all()
    # The excluded (NaN) planes do not reach the Faraday products.
    peaks = xr.open_zarr(work / "results/faraday/peaks.zarr")
    assert np.isfinite(peaks["peak_pi"].values).all() and np.isfinite(peaks["peak_phi"].values).all()

    # A re-delivered copy with one channel changed, at another path: that channel's block only, and
    # in it only the changed channel is imaged again (the others' visibilities came out the same),
    # so the cube rewrites one plane.
    copy = tmp_path / "redelivered.ms"
    shutil.copytree(survey_ms, copy)
    scale_channels(copy, [9], 0.8)
    config = write_config(work, copy, channels={"block": 8, "exclude": ["28-31"]}, faraday={"clean": False})
    counts = job_counts(run_snakemake(work, "--configfile", str(config)))
    assert counts["split_channel"] == 1 and counts["image_channel"] == 1
    assert json.loads((work / "results/qa/cube.json").read_text())["planes_written"] == 1
    assert "1 of 8 channels imaged, 7 kept" in (work / "logs/image_channel/00008-00015.log").read_text()


def test_reading_the_workflow_reads_no_visibilities(small_ms, tmp_path):
    # A dry run plans every job without reading the data: the fingerprints are a job of their own.
    ms = small_ms()
    result = run_snakemake(tmp_path, "--configfile", str(write_config(tmp_path, ms)), "-n")
    counts = job_counts(result)
    assert counts["fingerprint_ms"] == 1 and counts["split_channel"] == 6
    assert not (tmp_path / "work").exists()


def test_without_fingerprints_the_ms_is_read_where_it_is(small_ms, tmp_path):
    ms = small_ms()
    config = write_config(tmp_path, ms, channels={"fingerprint": False})
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert job_counts(result)["split_channel"] == 6
    assert not (tmp_path / "work/ms/input.ms").exists() and not (tmp_path / "work/ms/fingerprints.json").exists()


def test_fingerprints_follow_content_not_file_times(small_ms, tmp_path):
    ms = small_ms(nchan=6)
    cache = tmp_path / "fingerprints.json"
    first = ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=cache)
    assert len(set(first.channels[0])) == 6 and first.unflagged[0] == (first.unflagged[0][0],) * 6
    for path in [ms, *ms.rglob("*")]:
        os.utime(path)
    assert ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=cache) == first

    from casacore.tables import table

    with table(str(ms), readonly=False, ack=False) as main:
        flags = main.getcolslice("FLAG", [2, 0], [2, 3])
        flags[:10] = True
        main.putcolslice("FLAG", flags, [2, 0], [2, 3])
    cached = json.loads(cache.read_text())["columns"]
    flagged = ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=cache)
    assert [a != b for a, b in zip(first.channels[0], flagged.channels[0])] == [False, False, True, False, False, False]
    assert flagged.unflagged[0][2] == first.unflagged[0][2] - 40  # 10 rows x 4 correlations
    assert flagged.layout == first.layout
    # Only FLAG was read again; the cached DATA hashes were kept as they were.
    assert json.loads(cache.read_text())["columns"]["DATA"] == cached["DATA"]

    copy = tmp_path / "copy.ms"
    shutil.copytree(ms, copy)
    assert ms_fingerprints(str(copy), column="DATA", spws=[0], field=None, cache_path=cache) == flagged


def test_fingerprints_do_not_depend_on_how_a_column_is_read(small_ms, tmp_path, monkeypatch):
    # A tiled column is read a tile's channels at a time, a row-wise one in groups of channels: the
    # digests are those of each channel's bytes either way. After DATA alone changed, the row
    # columns (and the lock file every writer touches) do not make the rows be read again.
    from casacore.tables import table

    from spectropol.io import fingerprint

    ms = small_ms(nchan=6)
    whole = ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=tmp_path / "whole.json")
    for group in (1, 4):
        monkeypatch.setattr(fingerprint, "channels_per_read", lambda *args, group=group: group)
        read = ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=tmp_path / f"{group}.json")
        assert read == whole
    monkeypatch.undo()

    kept_rows = []
    spw_fingerprints = fingerprint._spw_fingerprints
    monkeypatch.setattr(fingerprint, "_spw_fingerprints",
                        lambda *args: kept_rows.append(args[-1]) or spw_fingerprints(*args))
    scale_channels(ms, [4], 1.1)
    edited = ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=tmp_path / "whole.json")
    assert [a != b for a, b in zip(whole.channels[0], edited.channels[0])] == [False] * 4 + [True, False]
    assert kept_rows == [json.loads((tmp_path / "1.json").read_text())["rows"]["0"]]
    with table(str(ms), readonly=False, ack=False) as main:  # UVW changed: every channel with it
        main.putcol("UVW", main.getcol("UVW") * 1.01)
    moved = ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=tmp_path / "whole.json")
    assert kept_rows[-1] is None and moved.layout != whole.layout
    assert all(a != b for a, b in zip(edited.channels[0], moved.channels[0]))


def test_channel_plan_blocks_exclusions_and_overrides():
    assert parse_channel_ranges([0, "4-6", 5], 10) == [0, 4, 5, 6]
    with pytest.raises(ValueError, match="not within channels 0..9"):
        parse_channel_ranges(["8-12"], 10)
    blocks = plan_blocks(10, 4, exclude=[4, 5, 6, 7])
    assert blocks == {"00000-00003": [0, 1, 2, 3], "00008-00009": [8, 9]}
    assert plan_blocks(3, 1) == {"00000": [0], "00001": [1], "00002": [2]}
    settings = channel_settings({"robust": 0.0}, {"niter": 100}, [
        {"channels": ["1-2"], "imaging": {"robust": 1.0}},
        {"channels": [2], "clean": {"niter": 5}, "imaging": {"robust": -1.0}},
    ], 4)
    assert [s["imaging"]["robust"] for s in settings] == [0.0, 1.0, -1.0, 0.0]
    assert [s["clean"]["niter"] for s in settings] == [100, 100, 5, 100]
