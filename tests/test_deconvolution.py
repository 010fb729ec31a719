"""Deconvolution: Hogbom and joint Q/U CLEAN, Cotton-Schwab major cycles, restoring and beams,
against the simulated truth and against WSClean."""

import dataclasses
import subprocess

import numpy as np
import pytest

from conftest import channel_path, has_wsclean, image_geometry
from spectropol.errors import SpectropolError
from spectropol.io.channels import read_channel_vis
from spectropol.io.ms import select_data
from spectropol.kernels.beam import beam_covariance, common_beam, convolve_to_beam, gaussian_beam_image
from spectropol.kernels.clean import cotton_schwab, hogbom, hogbom_polarised
from spectropol.kernels.weighting import imaging_weights
from spectropol.options import ChannelSettings, CleanOptions, ImagingOptions
from spectropol.stages.image import image_channel
from spectropol.stages.split import split_channel

ARCSEC = np.pi / (180 * 3600)
CELL = 40 * ARCSEC
NPIX = 256


def psf_with_sidelobes(n):
    """A 2n x 2n PSF: a Gaussian main lobe with a ring of 10% sidelobes, peak 1 at (n, n)."""
    y, x = np.mgrid[0 : 2 * n, 0 : 2 * n] - n
    r = np.hypot(x, y)
    return (np.exp(-0.5 * (r / 1.5) ** 2) + 0.1 * np.cos(r / 2.0) * np.exp(-r / 20.0) * (r > 3)).astype(np.float64)


def dirty_from(components, psf2, n):
    image = np.zeros((n, n))
    for y, x, flux in components:
        image += flux * psf2[n - y : 2 * n - y, n - x : 2 * n - x]
    return image


def test_hogbom_finds_the_components_of_a_known_dirty_image():
    n = 64
    psf2 = psf_with_sidelobes(n)
    truth = [(20, 30, 1.0), (40, 12, -0.5), (45, 50, 0.3)]
    residual = dirty_from(truth, psf2, n)
    model = np.zeros((n, n))
    done = hogbom(residual, psf2, model, gain=0.2, threshold=1e-4, niter=5000)
    assert done < 5000
    for y, x, flux in truth:
        assert model[y, x] == pytest.approx(flux, abs=1e-3)
    assert np.abs(residual).max() < 1e-4
    assert np.count_nonzero(np.abs(model) > 1e-3) == 3


def test_joint_qu_clean_keeps_the_polarisation_angle():
    n = 64
    psf2 = psf_with_sidelobes(n)
    p, angle = 0.8, np.deg2rad(35.0)
    q = dirty_from([(30, 30, p * np.cos(2 * angle))], psf2, n)
    u = dirty_from([(30, 30, p * np.sin(2 * angle))], psf2, n)
    model_q, model_u = np.zeros((n, n)), np.zeros((n, n))
    hogbom_polarised(q, u, psf2, model_q, model_u, gain=0.1, threshold=1e-4, niter=1000)
    assert np.hypot(model_q[30, 30], model_u[30, 30]) == pytest.approx(p, rel=1e-3)
    assert 0.5 * np.arctan2(model_u[30, 30], model_q[30, 30]) == pytest.approx(angle, abs=1e-6)
    assert np.count_nonzero(model_q) == 1  # one pixel, not Q and U cleaned apart


def test_divergence_stops_at_the_best_model_or_is_an_error_when_asked():
    n = 32
    psf2 = psf_with_sidelobes(n)
    dirty = dirty_from([(10, 10, 1.0)], psf2, n)[None]
    growing = lambda model: dirty * (1.0 + 10 * np.abs(model).sum())  # a broken major cycle
    options = CleanOptions(niter=200, auto_threshold=0.0, threshold_jy=1e-3)
    with pytest.raises(SpectropolError, match="CLEAN diverged in Stokes I: the residual peak grew"):
        cotton_schwab(dirty.copy(), psf2, growing, dataclasses.replace(options, on_divergence="error"), ("I",))
    # By default (as WSClean's divergence limit): the model and residual before the growth are kept.
    model, residual, report = cotton_schwab(dirty.copy(), psf2, growing, options, ("I",))
    assert report["diverged"] and report["diverged_stokes"] == ["I"] and not report["threshold_reached"]
    assert not model.any()  # the only model that did not make the residual grow: none
    np.testing.assert_array_equal(residual, dirty)


def test_common_beam_contains_every_beam_and_keeps_point_source_peaks():
    beams = [{"bmaj_deg": 0.02, "bmin_deg": 0.015, "bpa_deg": 10.0}, {"bmaj_deg": 0.025, "bmin_deg": 0.012,
                                                                      "bpa_deg": -60.0},
             {"bmaj_deg": 0.018, "bmin_deg": 0.018, "bpa_deg": 0.0}]
    target = common_beam(beams)
    for beam in beams:
        assert np.linalg.eigvalsh(beam_covariance(target) - beam_covariance(beam)).min() >= -1e-15
    cell = 10 * ARCSEC
    # a 2 Jy point source seen with each beam has a 2 Jy/beam peak after convolution to the target
    for beam in beams:
        image = 2.0 * gaussian_beam_image(beam, (128, 128), cell)[None]
        convolved = convolve_to_beam(image, beam, target, cell)
        assert convolved[0, 64, 64] == pytest.approx(2.0, rel=2e-3)
        expected = 2.0 * gaussian_beam_image(target, (128, 128), cell)
        assert np.abs(convolved[0] - expected).max() < 5e-3


@pytest.fixture(scope="module")
def cleaned_channel(tmp_path_factory):
    """One channel of a simulated observation imaged and deconvolved (256^2, 40 arcsec pixels)."""
    from conftest import REPO
    from spectropol.stages.simulate import simulate_ms

    folder = tmp_path_factory.mktemp("clean")
    ms = folder / "obs.ms"
    noise = 0.05
    simulate_ms(ms, REPO / "resources/skymodels/demo.yaml", REPO / "resources/layouts/ska_low_like.yaml", ra_deg=60.0,
                dec_deg=-30.0, start_freq_hz=140e6, chan_width_hz=1e6, nchan=2, ntimes=24, integration_s=10.0,
                hour_angle_span_h=6.0, noise_jy=noise, seed=11)
    selection = select_data(str(ms))
    split_channel(selection, 0, folder / "v.zarr", folder / "v.json")
    clean = dict(niter=3000, gain=0.1, mgain=0.8, auto_threshold=3.0)
    stats = image_channel(folder / "v.zarr", folder / "i.zarr", folder / "i.json", image_geometry(selection, NPIX,
                                                                                                  40.0),
                          ChannelSettings(ImagingOptions(), CleanOptions(**clean)))
    return folder, ms, selection, stats, noise, clean


def source_pixel(source):
    return int(round(NPIX // 2 - source.l / CELL)), int(round(NPIX // 2 + source.m / CELL))


def test_restored_fluxes_positions_and_residual_noise(cleaned_channel, demo_sky):
    import xarray as xr

    folder, ms, selection, stats, noise, _ = cleaned_channel
    images = xr.open_zarr(folder / "i.zarr")
    restored, model, residual = images["restored"].values, images["model"].values, images["residual"].values
    reference_hz, sources = demo_sky
    freq = np.array([selection.freqs[0]])
    for source in sources:
        x, y = source_pixel(source)
        truth = source.stokes(freq, reference_hz)
        # restored peak fluxes within 2%; for Q, U, V of a source that has them, 2% of its I
        assert restored[0, y, x] == pytest.approx(truth["I"][0], rel=0.02), source.name
        for k, s in enumerate("QUV", start=1):
            assert abs(restored[k, y, x] - truth[s][0]) < 0.02 * truth["I"][0], (source.name, s)
        # the clean components sit on the source's pixel
        stamp = np.abs(model[0, y - 3 : y + 4, x - 3 : x + 4])
        assert stamp[3, 3] > 0.9 * stamp.sum(), source.name
    # thermal noise of the Stokes I image from the weights: sigma^2 = sum w^2 var(Re V) / (sum w)^2
    arrays, _ = read_channel_vis(folder / "v.zarr")
    w = imaging_weights(arrays["uvw"], selection.freqs[0], arrays["weight"][:, 0], scheme="briggs", npix=NPIX,
                        cell_rad=CELL)
    expected = np.sqrt((w**2).sum() * noise**2 / 2) / w.sum()
    for k in range(4):
        assert 1.4826 * np.median(np.abs(residual[k] - np.median(residual[k]))) == pytest.approx(expected, rel=0.2)
    assert stats.clean["threshold_reached"] and not stats.clean["diverged"]
    assert stats.clean["iterations"] > 0 and stats.clean["major_cycles"] >= 2


@pytest.mark.slow
@pytest.mark.wsclean
@pytest.mark.skipif(not has_wsclean(), reason="wsclean not installed (make system-deps installs it)")
def test_agrees_with_wsclean_joined_polarisations(cleaned_channel, demo_sky, tmp_path):
    import xarray as xr
    from astropy.io import fits

    folder, ms, selection, _, _, clean = cleaned_channel
    subprocess.run(["wsclean", "-quiet", "-size", str(NPIX), str(NPIX), "-scale", "40asec", "-pol", "IQUV",
                    "-join-polarizations", "-weight", "briggs", "0", "-niter", str(clean["niter"]), "-mgain", "0.8",
                    "-auto-threshold", "3", "-channel-range", "0", "1", "-no-update-model-required",
                    "-name", str(tmp_path / "ws"), str(ms)], check=True, capture_output=True)
    ours = xr.open_zarr(folder / "i.zarr")["restored"].values
    for k, s in enumerate("IQUV"):
        theirs = fits.getdata(tmp_path / f"ws-{s}-image.fits")[0, 0]
        for source in demo_sky[1]:
            x, y = source_pixel(source)
            if k == 0:
                ours_stamp, theirs_stamp = ours[0, y - 3 : y + 4, x - 3 : x + 4], theirs[y - 3 : y + 4, x - 3 : x + 4]
                assert np.argmax(ours_stamp) == np.argmax(theirs_stamp) == 24
                assert ours[0, y, x] == pytest.approx(theirs[y, x], rel=0.02), source.name
            else:
                assert abs(ours[k, y, x] - theirs[y, x]) < 0.02 * ours[0, y, x], (source.name, s)


@pytest.mark.slow
def test_workflow_cube_is_restored_with_a_common_beam(small_ms, tmp_path, demo_sky):
    import json

    import xarray as xr
    import yaml

    from conftest import run_snakemake

    ms = small_ms(ntimes=16, noise_jy=0.05)
    config = {"input": {"ms": str(ms)}, "imaging": {"size": NPIX, "cell_arcsec": 40.0},
              "clean": {"niter": 1000}, "cube": {"chunk": 128, "common_beam": True}, "faraday": {"chunk_mb": 16}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--configfile", str(tmp_path / "config.yaml"))
    cube = xr.open_zarr(tmp_path / "results/cube/cube.zarr")
    assert cube.attrs["image"] == "restored" and "restored" in cube
    assert np.allclose(cube["bmaj"].values, cube["bmaj"].values[0]) and cube.attrs["common_beam"]["bmaj_deg"] > 0
    # every channel's own beam fits inside the common one
    channel_beam = xr.open_zarr(channel_path(tmp_path, "results/channels", 0)).attrs["beam"]
    assert channel_beam["bmaj_deg"] <= cube.attrs["common_beam"]["bmaj_deg"]
    qa = json.loads(channel_path(tmp_path, "results/qa/image", 2).read_text())
    assert qa["clean"]["iterations"] > 0 and qa["clean"]["threshold_reached"]
    reference_hz, sources = demo_sky
    freqs = cube["freq"].values
    restored_i = cube["restored"].sel(stokes="I").values
    for source in sources:
        x, y = source_pixel(source)
        # point sources keep their flux in Jy/beam whatever the beam
        np.testing.assert_allclose(restored_i[:, y, x], source.stokes(freqs, reference_hz)["I"], rtol=0.03,
                                   err_msg=source.name)


def test_auto_mask_cleans_deeper_only_where_sources_were_found():
    # Two sources and a noise floor: with auto_mask 5 and auto_threshold 1, the deep phase may
    # only add components on pixels already found above 5 sigma.
    rng = np.random.default_rng(3)
    n = 64
    psf2 = psf_with_sidelobes(n)
    noise = 0.01 * rng.standard_normal((n, n))
    dirty = (dirty_from([(20, 20, 1.0), (40, 44, 0.5)], psf2, n) + noise)[None]
    truth = dirty_from([(20, 20, 1.0), (40, 44, 0.5)], psf2, n)

    def residual_of(model):  # an exact major cycle for this image-domain problem
        out = dirty.copy()
        from scipy.signal import fftconvolve

        out[0] -= fftconvolve(model[0], psf2, mode="full")[n : 2 * n, n : 2 * n]
        return out

    settings = CleanOptions(niter=5000, gain=0.1, auto_threshold=1.0, auto_mask=5.0)
    model, residual, report = cotton_schwab(dirty.copy(), psf2, residual_of, settings, ("I",))
    def far_from_sources(m):
        return [tuple(p) for p in np.argwhere(m != 0) if min(np.hypot(*(p - (20, 20))), np.hypot(*(p - (40, 44)))) > 2]

    assert far_from_sources(model[0]) == []  # no component on a noise peak
    assert model[0, 19:22, 19:22].sum() == pytest.approx(1.0, abs=0.03)
    assert model[0, 39:42, 43:46].sum() == pytest.approx(0.5, abs=0.03)
    # without the mask, cleaning to 1 sigma puts components on noise
    unmasked, _, _ = cotton_schwab(dirty.copy(), psf2, residual_of, CleanOptions(niter=5000, gain=0.1,
                                                                                 auto_threshold=1.0), ("I",))
    assert len(far_from_sources(unmasked[0])) > 10
    assert np.abs(residual[0] - (dirty[0] - truth)).max() < 0.05
