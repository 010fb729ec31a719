"""Planning is a pure function of the config and a description of the input: blocks, settings per
channel, stage options, products and resources, tested here without Snakemake or data."""

import copy

import pytest
import yaml

from conftest import REPO
from spectropol.planning import Observation, PlanError, observe, plan


@pytest.fixture(scope="module")
def base_config():
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def config_with(base, **sections):
    config = copy.deepcopy(base)
    for section, values in sections.items():
        config[section].update(values)
    return config


FULL = Observation(ms="/data/obs.ms", nchan=10, stokes=("I", "Q", "U", "V"))


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


def test_data_without_cross_hands_skip_the_faraday_stages_with_a_warning(base_config):
    p = plan(base_config, Observation(ms="/data/xxyy.ms", nchan=4, stokes=("I", "Q")))
    assert not p.polarisation
    assert p.warnings == ("/data/xxyy.ms: correlations give Stokes I, Q only; Faraday moments and RM synthesis "
                          "need Q and U and are skipped",)


def test_resources_grow_with_the_work(base_config):
    small = plan(config_with(base_config, channels={"block": 1}), FULL)
    large = plan(config_with(base_config, channels={"block": 8}, imaging={"size": 2048}), FULL)
    assert large.image_runtime("00000-00007", 100.0) > small.image_runtime("00000", 100.0)
    assert large.image_mem_mb("00000-00007", 800.0) > small.image_mem_mb("00000", 100.0)
    assert large.cube_mem_mb() > small.cube_mem_mb() > 0
    assert small.faraday_mem_mb(threads=4) > small.faraday_mem_mb(threads=1)


def test_the_demo_is_planned_from_the_config_alone(base_config):
    observation = observe(base_config)
    assert observation == Observation(ms=None, nchan=base_config["simulate"]["nchan"], stokes=("I", "Q", "U", "V"))
    assert not plan(base_config, observation).fingerprint  # the demo MS is made by a rule: file times decide


def test_observing_an_ms_reads_only_small_subtables(small_ms, base_config, monkeypatch):
    from spectropol.io import ms as ms_module

    opened = []
    original = ms_module.open_table

    def recording(path, name=None):
        opened.append(name)
        return original(path, name)

    monkeypatch.setattr(ms_module, "open_table", recording)
    observation = observe(config_with(base_config, input={"ms": str(small_ms())}))
    assert observation.nchan == 6 and observation.stokes == ("I", "Q", "U", "V")
    assert set(opened) <= {"SPECTRAL_WINDOW", "DATA_DESCRIPTION", "POLARIZATION"}  # never the main table
