"""Observed data (../shared/data/real-ms): every MS there gets products or a one-line refusal before
any job runs, with a generic config (automatic cell, 128 pixels, CLEAN 200); and LOFAR HBA on 3C48
(linear feeds, CORRECTED_DATA, 31% flagged) and EVLA on J1008+0730 (circular feeds, 64 channels,
uncalibrated DATA) checked against their visibilities."""

import json
import subprocess

import numpy as np
import pytest
import yaml

from conftest import REPO, SHARED_DATA, channel_path, run_snakemake

pytestmark = pytest.mark.slow

LOFAR = SHARED_DATA / "real-ms/lofar-hba-3c48-tNDPPP-generic.MS.tgz"
VLA = SHARED_DATA / "real-ms/vla-day2-TDEM0003-1src-1spw.ms.tar.gz"
LOFAR_MODEL = SHARED_DATA / "real-ms/lofar-tDDECal.in_MS.tgz"
LOFAR_BDA = SHARED_DATA / "real-ms/lofar-bda-tNDPPP-bda.MS.tgz"
ALMA = SHARED_DATA / "real-ms/alma-X5707-1spw-10chan.ms.tar.gz"
PAPER = SHARED_DATA / "real-ms/paper-zen.2456865.60537.xy.uvcRREAAM.ms.tar.gz"
GENERIC = {"imaging": {"size": 128, "cell_arcsec": None}, "clean": {"niter": 200}, "cube": {"chunk": 64},
           "faraday": {"chunk_mb": 16}}

# (archive, input options, other config sections) -> products (channels in the cube, whether the
# Faraday stages ran), or the refusal, made before any job ("{ms}" is the unpacked MS). LOFAR's
# catalogue corrects for the station beam EveryBeam computes from the MS's LOFAR_* subtables.
EVERYBEAM = {"catalogue": {"primary_beam": "everybeam"}}
CASES = {
    "lofar": (LOFAR, {"column": "CORRECTED_DATA"}, EVERYBEAM, {"channels": 8, "faraday": True}),
    "lofar-model-column": (LOFAR_MODEL, {"column": "foursources_DATA"}, {}, {"channels": 8, "faraday": True}),
    "lofar-bda": (LOFAR_BDA, {"spw": "all"}, {},
                  "{ms}: spectral windows [0, 1, 2, 3] (3, 4, 1, 8 channels) cover the same band, as "
                  "baseline-dependent averaging writes them; image one with input.spw, or expand the MS to regular "
                  "channels first (DP3's BDA expander)"),
    "lofar-bda-no-spw": (LOFAR_BDA, {}, {}, "{ms}: has 4 spws [0, 1, 2, 3]; choose one with input.spw in the config "
                                            "(a number, a list, or all)"),
    "lofar-bda-one-spw": (LOFAR_BDA, {"spw": 3}, {}, {"channels": 8, "faraday": True}),
    "vla": (VLA, {}, {}, {"channels": 64, "faraday": True}),
    "vla-everybeam": (VLA, {}, EVERYBEAM, "{ms}: telescope 'EVLA' is not one EveryBeam models here (LOFAR, "
                                          "AARTFAAC); set catalogue.primary_beam to airy, gaussian or fits"),
    "alma-xx-yy": (ALMA, {}, {}, {"channels": 11, "faraday": False}),
    "paper-one-correlation": (PAPER, {}, {}, "{ms}: correlations XY of spw 0 form no Stokes parameter (Stokes I "
                                             "needs XX and YY, or RR and LL)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_real_ms_gets_products_or_a_refusal_before_any_job(tmp_path, case):
    import xarray as xr

    archive, options, sections, expected = CASES[case]
    ms = unpack(archive, tmp_path)
    config = GENERIC | {"input": {"ms": str(ms)} | options} | sections
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = run_snakemake(workdir, "--configfile", str(tmp_path / "config.yaml"), check=False)
    if isinstance(expected, str):
        assert result.returncode != 0
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("spectropol: error")]
        assert errors[0] == "spectropol: error: " + expected.format(ms=ms)
        assert not (workdir / "work").exists() and not (workdir / "results").exists()  # refused before any job
        return
    assert result.returncode == 0, result.stderr[-3000:]
    cube = xr.open_zarr(workdir / "results/cube/cube.zarr")
    assert cube.sizes["freq"] == expected["channels"] and np.all(np.diff(cube["freq"].values) > 0)
    assert np.isfinite(cube[cube.attrs["image"]].sel(stokes="I").values).any()
    assert (workdir / "results/faraday/peaks.zarr").exists() == expected["faraday"]
    assert (workdir / "results/catalogue/catalogue.vot").exists() == expected["faraday"]
    if sections.get("catalogue", {}).get("primary_beam") == "everybeam":
        from astropy.table import Table

        from spectropol.io.beam_fits import read_beam_fits

        beam = read_beam_fits(workdir / "results/catalogue/primary_beam.fits")
        centre = (cube.attrs["wcs"]["CRVAL1"], cube.attrs["wcs"]["CRVAL2"])
        assert beam.response(cube["freq"].values, np.array([centre[0]]), np.array([centre[1]])) == pytest.approx(1.0)
        rows = Table.read(workdir / "results/catalogue/catalogue.fits")
        # 3C48 is unpolarised at 134 MHz: nothing to correct here, the beam's values are tested in
        # test_primary_beam.py against EveryBeam evaluated in each direction
        assert rows.meta["PBMODEL"] == "everybeam" and len(rows) == 0


def unpack(archive, folder):
    if not archive.exists():
        pytest.skip(f"{archive} not present (../shared/data is not beside this checkout)")
    subprocess.run(["tar", "xzf", str(archive), "-C", str(folder)], check=True, capture_output=True)
    (ms,) = [p for p in folder.iterdir() if p.is_dir()]
    return ms


def run_example(tmp_path, archive, example):
    ms = unpack(archive, tmp_path)
    config = yaml.safe_load((REPO / "config/examples" / example).read_text())
    config["input"]["ms"] = str(ms)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    workdir.mkdir()
    run_snakemake(workdir, "--configfile", str(path))
    return ms, config, workdir


def stokes_i_visibilities(ms, column):
    from casacore.tables import table, taql

    with table(str(ms), ack=False) as main:  # noqa: F841 (TaQL reads it as $main)
        cross = taql("SELECT FROM $main WHERE ANTENNA1 != ANTENNA2")
        data, flags, uvw = cross.getcol(column), cross.getcol("FLAG"), cross.getcol("UVW")
        weight = cross.getcol("WEIGHT")
    usable = ~(flags[..., 0] | flags[..., 3])
    return 0.5 * (data[..., 0] + data[..., 3]), usable, np.hypot(uvw[:, 0], uvw[:, 1]), weight


def test_lofar_3c48_is_at_the_phase_centre_with_the_visibility_flux(tmp_path):
    import xarray as xr

    ms, config, workdir = run_example(tmp_path, LOFAR, "lofar-3c48.yaml")
    cube = xr.open_zarr(workdir / "results/cube/cube.zarr")
    stokes_i = cube[cube.attrs["image"]].sel(stokes="I").mean("freq").values
    npix = config["imaging"]["size"]
    from casacore.tables import table

    with table(f"{ms}/ANTENNA", ack=False) as antennas:  # LOFAR HBA stations, about 31 m across
        assert cube.attrs["wcs"]["DISHDIAM"] == pytest.approx(np.median(antennas.getcol("DISH_DIAMETER")))
    assert np.unravel_index(np.nanargmax(stokes_i), stokes_i.shape) == (npix // 2, npix // 2)
    vis, usable, baseline, _ = stokes_i_visibilities(ms, "CORRECTED_DATA")
    short = baseline < np.median(baseline)
    expected = vis.real[usable & short[:, None]].mean()
    assert stokes_i[npix // 2, npix // 2] == pytest.approx(expected, rel=0.10)
    assert expected > 50  # 3C48 is about 75 Jy at 134 MHz: the calibrated column really is in Jy
    split_qa = json.loads(channel_path(workdir, "results/qa/split", 0).read_text())
    assert split_qa["stokes_present"] == ["I", "Q", "U", "V"] and 0.2 < split_qa["flagged_fraction"] < 0.5


def test_vla_circular_feeds_all_channels_and_stokes_i_from_rr_ll(tmp_path):
    # DATA is uncalibrated (its phases scatter like noise), so the calibrator cannot be expected at
    # the centre; what can be checked is that the circular feeds are read, every channel imaged,
    # and Stokes I formed from (RR + LL) / 2: the dirty image at the phase centre is the weighted
    # mean of the real part of those visibilities.
    import xarray as xr

    ms, config, workdir = run_example(tmp_path, VLA, "vla-j1008.yaml")
    cube = xr.open_zarr(workdir / "results/cube/cube.zarr")
    assert cube.sizes["freq"] == 64
    # the catalogue's analytic primary beam takes the dish from ANTENNA::DISH_DIAMETER: the VLA's 25 m
    assert cube.attrs["wcs"]["DISHDIAM"] == 25.0
    inspection = json.loads((workdir / "work/ms/selection.json").read_text())
    assert inspection["inputs"][0]["0"]["feed_basis"] == "circular"  # input 0, spw 0
    vis, usable, _, weight = stokes_i_visibilities(ms, "DATA")
    w_i = 4.0 / (1.0 / weight[:, 0] + 1.0 / weight[:, 3])
    npix = config["imaging"]["size"]
    for channel in (0, 31, 63):
        w = np.where(usable[:, channel], w_i, 0.0)
        expected = (w * vis[:, channel].real).sum() / w.sum()
        scatter = np.sqrt((w * (vis[:, channel].real - expected) ** 2).sum() / w.sum() / len(w))
        measured = cube["dirty"].sel(stokes="I").values[channel, npix // 2, npix // 2]  # the example does not clean
        assert abs(measured - expected) < 0.05 * scatter
