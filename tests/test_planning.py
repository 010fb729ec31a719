"""Planning is a pure function of the config and a description of the input: blocks, settings per
channel, stage options, products and resources, tested here without Snakemake or data."""

import copy
import dataclasses

import numpy as np
import pytest
import yaml

from conftest import REPO
from spectropol.planning import ChannelSource, Observation, PlanError, observe, plan


@pytest.fixture(scope="module")
def base_config():
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def config_with(base, **sections):
    config = copy.deepcopy(base)
    for section, values in sections.items():
        config[section].update(values)
    return config


def observation(nchan=10, stokes=("I", "Q", "U", "V"), rows=1000.0, inputs=("/data/obs.ms",), start_hz=1.0e8,
                width_hz=1.0e6):
    channels = tuple(ChannelSource(0, 0, c, start_hz + width_hz * c, width_hz) for c in range(nchan))
    return Observation(inputs=inputs, channels=channels, stokes=stokes, rows_per_channel=rows)


FULL = observation()


def test_blocks_exclusions_and_overrides(base_config):
    config = config_with(base_config, channels={"block": 4, "exclude": ["4-7"],
                                                "overrides": [{"channels": [9], "clean": {"niter": 5}}]})
    p = plan(config, FULL)
    assert p.blocks == {"00000-00003": [0, 1, 2, 3], "00008-00009": [8, 9]}
    assert p.excluded == (4, 5, 6, 7) and p.width == 5
    assert [s.clean.niter for s in p.block_settings("00008-00009")] == [1000, 5]
    assert p.channel_image_stores()[-1] == "results/channels/00008-00009/00009.zarr"
    assert p.fingerprint and p.polarisation and p.warnings == ()


def test_channel_lists_outside_the_data_are_refused(base_config):
    with pytest.raises(PlanError, match="config: channels.exclude: '8-12' is not within channels 0..9"):
        plan(config_with(base_config, channels={"exclude": ["8-12"]}), FULL)
    with pytest.raises(PlanError, match="leaves none of the 10 channels"):
        plan(config_with(base_config, channels={"exclude": ["0-9"]}), FULL)


def test_stage_options_follow_the_config(base_config):
    p = plan(config_with(base_config, faraday={"dphi": 0.5, "clean": False}, clean={"niter": 0},
                         cube={"chunk": 64}), FULL)
    assert p.rm_synthesis.dphi_rad_m2 == 0.5 and p.rm_clean is None
    assert p.cube.image == "dirty" and p.cube.chunk_px == 64  # no CLEAN: no restored images
    assert plan(base_config, FULL).cube.image == "restored"


def test_channel_stores_keep_the_cubes_image_and_what_is_asked(base_config):
    # nothing reads the other kinds, so by default only the cube's image is kept (a fifth of the bytes)
    assert plan(base_config, FULL).channel_images == ("restored",)
    assert plan(config_with(base_config, clean={"niter": 0}), FULL).channel_images == ("dirty",)
    kept = plan(config_with(base_config, imaging={"keep_images": ["psf", "restored", "residual"]}), FULL)
    assert kept.channel_images == ("restored", "psf", "residual")


def test_data_without_cross_hands_skip_the_faraday_stages_with_a_warning(base_config):
    p = plan(base_config, observation(4, ("I", "Q"), inputs=("/data/xxyy.ms",)))
    assert not p.polarisation
    assert p.warnings == ("/data/xxyy.ms: correlations give Stokes I, Q only; Faraday moments and RM synthesis "
                          "need Q and U and are skipped",)


def test_resources_grow_with_the_work(base_config):
    small = plan(config_with(base_config, channels={"block": 1}), FULL)
    large = plan(config_with(base_config, channels={"block": 8}, imaging={"size": 2048}), FULL)
    assert large.image_runtime("00000-00007", 100.0) > small.image_runtime("00000", 100.0)
    assert large.image_mem_mb("00000-00007", 800.0) > small.image_mem_mb("00000", 100.0)
    assert large.cube_mem_mb() > small.cube_mem_mb() > 0
    assert small.faraday_depth_mem_mb(threads=4) > small.faraday_depth_mem_mb(threads=1)


def test_the_demo_is_planned_from_the_config_alone(base_config):
    demo = observe(base_config)
    assert demo.demo and demo.inputs == ("work/ms/demo.ms",) and demo.stokes == ("I", "Q", "U", "V")
    assert demo.nchan == base_config["simulate"]["nchan"]
    assert not plan(base_config, demo).fingerprint  # the demo MS is made by a rule: file times decide


def test_observing_an_ms_reads_only_small_subtables(small_ms, base_config, monkeypatch):
    from spectropol.io import ms as ms_module

    opened = []
    original = ms_module.open_table

    def recording(path, name=None):
        opened.append(name)
        return original(path, name)

    monkeypatch.setattr(ms_module, "open_table", recording)
    seen = observe(config_with(base_config, input={"ms": str(small_ms())}))
    assert seen.nchan == 6 and seen.stokes == ("I", "Q", "U", "V")
    assert set(opened) <= {"SPECTRAL_WINDOW", "DATA_DESCRIPTION", "POLARIZATION", "FIELD", "OBSERVATION"}


# -- many Measurement Sets and spectral windows, with made-up subtables --------------------------

def describe_from(table):
    """A stand-in for io.ms.describe_ms: {path: MSInfo}."""
    return lambda path: table[path]


def info(path, *spws, fields=(("F", 1.0, -0.5),), size=10_000_000):
    from spectropol.io.ms import MSInfo, SpectralWindowInfo

    windows = []
    for spw, (freqs, corr) in enumerate(spws):
        step = abs(freqs[1] - freqs[0]) if len(freqs) > 1 else 1e6
        windows.append(SpectralWindowInfo(spw, tuple(freqs), (step,) * len(freqs), corr))
    return MSInfo(ms=path, spws=tuple(windows), fields=tuple(fields), size_bytes=size)


LINEAR = ("XX", "XY", "YX", "YY")


def band(start_mhz, n, step_mhz=1.0):
    return [1e6 * (start_mhz + step_mhz * k) for k in range(n)]


def test_subbands_join_into_one_axis_in_increasing_frequency(base_config):
    table = {"a.ms": info("a.ms", (band(130, 4), LINEAR)),
             "b.ms": info("b.ms", (band(127, 3, -1.0), LINEAR)),  # decreasing: 127, 126, 125
             "c.ms": info("c.ms", (band(120, 5), LINEAR))}
    seen = observe(config_with(base_config, input={"ms": ["a.ms", "b.ms", "c.ms"]}), describe_from(table))
    freqs = [c.freq_hz / 1e6 for c in seen.channels]
    assert freqs == [120, 121, 122, 123, 124, 125, 126, 127, 130, 131, 132, 133]
    assert [(c.ms_index, c.spw_channel) for c in seen.channels[5:8]] == [(1, 2), (1, 1), (1, 0)]
    p = plan(config_with(base_config, input={"ms": ["a.ms", "b.ms", "c.ms"]}, channels={"block": 2}), seen)
    # blocks never cross from one MS to another: re-delivering one reruns only its own
    assert {label: p.block_sources[label][0] for label in p.blocks} == {
        "00000-00001": 2, "00002-00003": 2, "00004": 2, "00005-00006": 1, "00007": 1,
        "00008-00009": 0, "00010-00011": 0}
    assert p.block_spw_channels("00005-00006") == [2, 1]
    assert not p.cube_fits  # the gap 127 -> 130 MHz cannot be a FITS FREQ axis
    assert any("not evenly spaced" in w for w in p.warnings)


def test_several_spectral_windows_all_or_chosen(base_config):
    table = {"m.ms": info("m.ms", (band(100, 3), LINEAR), (band(150, 3), LINEAR))}
    with pytest.raises(PlanError, match=r"m.ms: has 2 spws \[0, 1\]; choose one with input.spw"):
        observe(config_with(base_config, input={"ms": "m.ms"}), describe_from(table))
    both = observe(config_with(base_config, input={"ms": "m.ms", "spw": "all"}), describe_from(table))
    assert [c.spw for c in both.channels] == [0, 0, 0, 1, 1, 1]
    second = observe(config_with(base_config, input={"ms": "m.ms", "spw": [1]}), describe_from(table))
    assert [c.freq_hz for c in second.channels] == band(150, 3)


@pytest.mark.parametrize("case,message", [
    ("overlap", r"a.ms \(spw 0\) and b.ms \(spw 0\): channels overlap at 102.000000 MHz; give each frequency once"),
    ("duplicate", r"a.ms \(spw 0\) and b.ms \(spw 0\): channels share the frequency 100.000000 MHz"),
    ("phase centre", r"a.ms and b.ms: phase centres are 36.0 arcsec apart \(more than "
                     r"input.phase_centre_tolerance_arcsec = 1\)"),
    ("stokes", r"a.ms \(spw 0: XX, XY, YX, YY\) and b.ms \(spw 0: XX, YY\): correlations form different Stokes"),
    ("no stokes", r"b.ms: correlations XY of spw 0 form no Stokes parameter"),
    ("bda", r"a.ms: spectral windows \[0, 1\] \(3, 6 channels\) cover the same band, as baseline-dependent "
            r"averaging writes them; image one with input.spw, or expand the MS"),
])
def test_inputs_that_cannot_be_one_observation_are_refused_in_one_line(base_config, case, message):
    a = info("a.ms", (band(100, 3), LINEAR))
    b = {"overlap": info("b.ms", (band(102.5, 3), LINEAR)),
         "duplicate": info("b.ms", (band(100, 1), LINEAR)),
         "phase centre": info("b.ms", (band(110, 3), LINEAR), fields=(("F", 1.0, -0.5 + 36 * np.pi / 648000),)),
         "stokes": info("b.ms", (band(110, 3), ("XX", "YY"))),
         "no stokes": info("b.ms", (band(110, 3), ("XY",))),
         "bda": None}[case]
    if case == "bda":
        table = {"a.ms": info("a.ms", (band(100, 3, 2.0), LINEAR), (band(99.5, 6, 1.0), LINEAR))}
        config = config_with(base_config, input={"ms": "a.ms", "spw": "all"})
    else:
        table = {"a.ms": a, "b.ms": b}
        config = config_with(base_config, input={"ms": ["a.ms", "b.ms"]})
    with pytest.raises(PlanError, match=message):
        observe(config, describe_from(table))


def test_glob_patterns_expand_and_a_pattern_without_matches_is_refused(base_config, tmp_path):
    for name in ("SB001.MS", "SB000.MS"):
        (tmp_path / name).mkdir()
    table = {str(tmp_path / "SB000.MS"): info(str(tmp_path / "SB000.MS"), (band(120, 2), LINEAR)),
             str(tmp_path / "SB001.MS"): info(str(tmp_path / "SB001.MS"), (band(122, 2), LINEAR))}
    seen = observe(config_with(base_config, input={"ms": str(tmp_path / "SB*.MS")}), describe_from(table))
    assert seen.inputs == (str(tmp_path / "SB000.MS"), str(tmp_path / "SB001.MS"))
    with pytest.raises(PlanError, match=r"input.ms: .*/none\*.ms matches no Measurement Set"):
        observe(config_with(base_config, input={"ms": str(tmp_path / "none*.ms")}), describe_from(table))


def test_automatic_blocks_follow_the_work_and_bound_the_job_count(base_config):
    from spectropol.planning.blocks import MAX_JOBS, TARGET_JOB_S, work_per_channel_s

    # Little data and small images: one job does a whole window in seconds.
    small = plan(config_with(base_config, imaging={"size": 256}, clean={"niter": 0}), observation(109, rows=190.0))
    assert len(small.blocks) == 1
    # Heavier channels (more visibilities, larger images, CLEAN): about TARGET_JOB_S of work a job.
    config = config_with(base_config, imaging={"size": 1024})
    heavy = plan(config, observation(64, rows=2e5))
    work = work_per_channel_s(2e5, 1024, config["clean"]["niter"])
    per_job = max(len(c) for c in heavy.blocks.values()) * work
    assert work < TARGET_JOB_S < per_job < 2 * TARGET_JOB_S and len(heavy.blocks) > 8
    # A channel that alone is more than that: one channel per job.
    huge = plan(config_with(base_config, imaging={"size": 2048}), observation(64, rows=2e6))
    assert len(huge.blocks) == 64
    # Thousands of cheap channels: never more than MAX_JOBS jobs.
    many = plan(config_with(base_config, imaging={"size": 64}, clean={"niter": 0}), observation(65536, rows=10.0))
    assert len(many.blocks) <= MAX_JOBS
    # An explicit number still wins.
    assert len(plan(config_with(base_config, channels={"block": 5}), observation(20)).blocks) == 4


def test_a_single_channel_skips_the_faraday_stages(base_config):
    p = plan(base_config, observation(1))
    assert not p.polarisation and "RM synthesis needs at least 2" in p.warnings[0]


def test_primary_beam_settings_are_checked_before_any_job(base_config):
    with pytest.raises(PlanError, match="catalogue.primary_beam is fits but catalogue.primary_beam_fits names no"):
        plan(config_with(base_config, catalogue={"primary_beam": "fits"}), FULL)
    with pytest.raises(PlanError, match="primary_beam_fits is given but catalogue.primary_beam is none"):
        plan(config_with(base_config, catalogue={"primary_beam_fits": "beam.fits"}), FULL)
    assert plan(config_with(base_config, catalogue={"primary_beam": "airy"}), FULL).catalogue.primary_beam == "airy"


def test_telescope_beam_models_only_where_they_know_the_telescope(base_config):
    """EveryBeam for LOFAR and AARTFAAC Measurement Sets, katbeam for MeerKAT within its bands: the
    rest is refused at planning, naming the MS and what to use instead."""

    lofar = dataclasses.replace(FULL, telescopes=("LOFAR",))
    meerkat_l = dataclasses.replace(observation(inputs=("/data/mk.ms",)), telescopes=("MeerKAT",), channels=tuple(
        ChannelSource(0, 0, c, 1.2e9 + 1.0e6 * c, 1.0e6) for c in range(10)))
    assert plan(config_with(base_config, catalogue={"primary_beam": "everybeam"}), lofar).catalogue.primary_beam \
        == "everybeam"
    assert plan(config_with(base_config, catalogue={"primary_beam": "katbeam"}), meerkat_l).catalogue.primary_beam \
        == "katbeam"
    with pytest.raises(PlanError, match=r"^/data/mk.ms: telescope 'MeerKAT' is not one EveryBeam models here"):
        plan(config_with(base_config, catalogue={"primary_beam": "everybeam"}), meerkat_l)
    with pytest.raises(PlanError, match=r"^/data/obs.ms: telescope 'LOFAR' is not MeerKAT, the one katbeam models"):
        plan(config_with(base_config, catalogue={"primary_beam": "katbeam"}), lofar)
    meerkat_s = dataclasses.replace(meerkat_l, channels=tuple(
        ChannelSource(0, 0, c, 2.5e9 + 1.0e6 * c, 1.0e6) for c in range(10)))
    with pytest.raises(PlanError, match=r"channels 2500.0-2509.0 MHz are not within one katbeam band"):
        plan(config_with(base_config, catalogue={"primary_beam": "katbeam"}), meerkat_s)
    demo = dataclasses.replace(FULL, demo=True)
    with pytest.raises(PlanError, match="the demo's simulated array has none"):
        plan(config_with(base_config, catalogue={"primary_beam": "everybeam"}), demo)
    # an MS gives Stokes I: the one pass also writes the Stokes I model maps, and exports them
    assert plan(base_config, FULL).stokes_i


def test_faraday_products_are_checked_and_memory_follows_the_tile(base_config):
    with pytest.raises(PlanError, match="faraday.fdf_fits exports the full FDF cubes, which only faraday.save_fdf"):
        plan(config_with(base_config, faraday={"fdf_fits": True}), FULL)
    with pytest.raises(PlanError, match=r"candidate_snr \(9\) is above catalogue.min_snr \(8\)"):
        plan(config_with(base_config, faraday={"candidate_snr": 9}), FULL)
    lean = plan(base_config, FULL)
    assert not lean.faraday_fdf_fits and lean.faraday_products.candidate_snr == 5.0
    # the request grows with the tile memory (chunk_mb) and the threads, not with the field alone
    big = plan(config_with(base_config, imaging={"size": 4096}), FULL)
    bigger_tiles = plan(config_with(base_config, imaging={"size": 4096}, faraday={"chunk_mb": 1024}), FULL)
    assert big.faraday_depth_mem_mb(2) < bigger_tiles.faraday_depth_mem_mb(2) < 2 * big.faraday_depth_mem_mb(4)
    assert big.faraday_depth_mem_mb(2) == pytest.approx(250 + 1.25 * 256 * 2, rel=0.15)



def test_cube_wide_runtimes_follow_the_data_and_cover_what_was_measured(base_config):
    """No fixed 120 minutes: the Faraday job's time grows with channels x pixels x depths, and its
    estimate for the case benchmarks/faraday.py measured (64 channels x 512^2 x 401 depths, RM-CLEAN
    of every pixel, 2 threads) is at least that measurement and within ten times it."""
    import json

    from conftest import REPO

    measured = json.loads((REPO / "benchmarks/results/faraday_diffuse.json").read_text())
    assert measured["case"]["channels"] == 64 and measured["case"]["npix"] == 512
    channels = tuple(ChannelSource(0, 0, c, f, 7.9e6) for c, f in enumerate(np.linspace(1.0e9, 1.5e9, 64)))
    bench = dataclasses.replace(FULL, channels=channels)
    config = config_with(base_config, imaging={"size": 512}, faraday={"dphi": 1.0, "phi_max": 200.0})
    p = plan(config, bench)
    assert p.faraday_grid_size() == (64, 401)
    seconds = p.faraday_depth_seconds(threads=2)
    wall = measured["wall_s"]["spectropol_synthesis_clean_peaks"]  # the whole process, RM-CLEAN of every pixel
    assert wall <= seconds <= 10 * wall, (seconds, wall)
    bigger = plan(config_with(config, imaging={"size": 2048}), bench)
    assert bigger.faraday_depth_seconds(2) == pytest.approx(16 * seconds, rel=0.05)
    assert bigger.faraday_depth_runtime(2) > p.faraday_depth_runtime(2) >= 5
    assert bigger.cube_runtime() > p.cube_runtime() and bigger.faraday_fits_runtime() >= p.faraday_fits_runtime()


def test_the_catalogue_request_counts_its_faraday_spectra_not_a_whole_synthesis_matrix(base_config):
    # benchmarks/scale.py at 4,096 channels of 15.6 kHz from 120 MHz (20,119 depths on the default
    # grid): the catalogue peaked at 1,047 MB against the 833 MB it asked, having made the whole
    # synthesis matrix (659 MB) for its sources' spectra. It makes it a block at a time now, and asks
    # for what source_faraday holds (source_faraday_mb, measured in
    # test_source_measurement.py::test_measuring_sources_holds_what_the_catalogue_asks_for).
    from spectropol.stages.catalogue import source_faraday_mb
    from spectropol.stages.faraday import synthesis_matrix_mb

    width = 64e6 / 4096
    config = config_with(base_config, imaging={"size": 512})
    wide = plan(config, observation(4096, rows=576.0, start_hz=120e6 + width / 2, width_hz=width))
    nchan, nphi = wide.faraday_grid_size()
    assert nchan == 4096 and nphi > 19000
    planes = 8 * 512**2 * 4 / 1e6 * 4
    assert wide.catalogue_mem_mb() == int(800 + planes + source_faraday_mb(nchan, nphi))
    assert source_faraday_mb(nchan, nphi) < synthesis_matrix_mb(nchan, nphi) / 1.5
    # the demo's few depths: the request within a tenth of the 833 MB it was
    assert plan(config, FULL).catalogue_mem_mb() < 920