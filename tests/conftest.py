"""Shared fixtures: a tiny simulated MS and one end-to-end run of the workflow on it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
ARCSEC = np.pi / (180 * 3600)


def run_snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` (outputs land there)."""
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-6000:]}")
    return result


def job_counts(result) -> dict[str, int]:
    """Jobs per rule that ran (or would run, with -n): one 'rule NAME:' header per job in
    Snakemake's log. The 'Job stats' table printed first is not used: when the fingerprint job
    must run, what follows it is only known once it has (it is a checkpoint)."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    counts = {}
    for match in re.finditer(r"^[ \t]*(?:local)?(?:rule|checkpoint) (\w+):$", text, flags=re.MULTILINE):
        counts[match[1]] = counts.get(match[1], 0) + 1
    return counts


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The workflow run once on tests/configs/tiny.yaml; the folder holds work/, results/, logs/."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    run_snakemake(workdir, "--configfile", str(REPO / "tests/configs/tiny.yaml"))
    return workdir


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """The effective simulate/imaging settings of the tiny run (defaults merged with the test file)."""
    import yaml

    defaults = yaml.safe_load((REPO / "config/config.yaml").read_text())
    overrides = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    for section, values in overrides.items():
        defaults[section].update(values)
    return defaults


@pytest.fixture(scope="session")
def demo_sky():
    from spectropol.stages.simulate import load_sky_model

    return load_sky_model(REPO / "resources/skymodels/demo.yaml")


def channel_path(run: Path, kind: str, channel: int) -> Path:
    """A channel's store or QA document in a run, whatever block it is in: kind is one of
    results/channels, work/vis, results/qa/image, results/qa/split."""
    suffix = ".json" if "/qa/" in kind else ".zarr"
    (path,) = (run / kind).glob(f"*/{channel:05d}{suffix}")
    return path


def source_pixel(source, npix: int, cell_arcsec: float) -> tuple[int, int]:
    """(x, y) of a sky-model source in our image convention."""
    cell = cell_arcsec * ARCSEC
    return int(round(npix // 2 - source.l / cell)), int(round(npix // 2 + source.m / cell))


@pytest.fixture
def small_ms(tmp_path):
    """A small simulated MS (linear feeds, 6 channels): factory taking simulate_ms keyword overrides."""
    from spectropol.stages.simulate import simulate_ms

    def make(name: str = "small.ms", **overrides) -> Path:
        options = dict(ra_deg=60.0, dec_deg=-30.0, start_freq_hz=120e6, chan_width_hz=2e6, nchan=6, ntimes=8,
                       integration_s=10.0, hour_angle_span_h=4.0, noise_jy=0.01, feeds="linear", seed=3)
        options.update(overrides)
        path = tmp_path / name
        simulate_ms(path, REPO / "resources/skymodels/demo.yaml", REPO / "resources/layouts/ska_low_like.yaml",
                    **options)
        return path

    return make


def write_test_cube(path, q, u, freqs=None, rms=None, chunk=16):
    """A cube store with the given Q and U (nfreq, ny, nx) and zero I and V."""
    from spectropol.io.cube import write_cube
    from spectropol.io.wcs import celestial_header

    nfreq, ny, nx = q.shape
    data = np.zeros((nfreq, 4, ny, nx), np.float32)
    data[:, 1], data[:, 2] = q, u
    freqs = np.linspace(120e6, 180e6, nfreq) if freqs is None else freqs
    rms = np.ones((nfreq, 4), np.float32) if rms is None else rms
    write_cube(path, data, freqs, celestial_header(1.0, -0.5, nx, ny, 1e-4), rms=rms, chunk=chunk)
    return path


def image_geometry(selection, npix: int, cell_arcsec: float):
    """The ImageGeometry of npix^2 images of cell_arcsec centred on the selection's phase centre."""
    from spectropol.io.wcs import celestial_header
    from spectropol.stages.inspect import ImageGeometry

    cell = cell_arcsec * ARCSEC
    return ImageGeometry(npix=npix, cell_rad=cell, cell_arcsec=cell_arcsec,
                         wcs=celestial_header(*selection.phase_centre_rad, npix, npix, cell))


def dirty_settings(**imaging):
    """Channel settings that make dirty images only (no CLEAN), with imaging options given."""
    from spectropol.options import ChannelSettings, CleanOptions, ImagingOptions

    return ChannelSettings(ImagingOptions(**imaging), CleanOptions(niter=0))


def has_wsclean() -> bool:
    return shutil.which("wsclean") is not None


os.environ.setdefault("OMP_NUM_THREADS", "1")
