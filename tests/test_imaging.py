"""The gridder, the weighting and the restoring beam, each against an independent calculation."""

import numpy as np
import pytest

from spectropol.kernels.beam import fit_restoring_beam, gaussian_beam_image
from spectropol.kernels.gridding import dirty_image
from spectropol.kernels.weighting import gridded_weight_density, imaging_weights
from spectropol.measurement import direct_dirty_image, predict_visibilities

ARCSEC = np.pi / (180 * 3600)


def wide_field_uvw(nrow=4000, seed=11):
    """Baselines up to 3 km with w as large as u and v, so that the w-term matters off-centre."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-3000, 3000, (nrow, 3))


@pytest.mark.parametrize("wgridding", [True, False])
def test_gridder_matches_direct_fourier_sum(wgridding):
    # Sources 1.5 deg off-centre: the w-term is a large fraction of a turn, so a sign error in w or
    # a missing correction would show at the 1e-2 level; the gridder must agree to 1e-5.
    uvw = wide_field_uvw()
    if not wgridding:
        uvw[:, 2] = 0.0
    freq, npix, cell = 150e6, 256, 40 * ARCSEC
    l = np.array([0.0, 100 * cell, -80 * cell])
    m = np.array([0.0, -60 * cell, 90 * cell])
    vis = predict_visibilities(uvw, [freq], l, m, np.array([[2.0], [1.0], [0.5]]))[:, 0]
    weight = np.random.default_rng(2).uniform(0.5, 2.0, len(uvw))
    image = dirty_image(uvw, freq, vis, weight, npix, cell, wgridding=True, epsilon=1e-7)
    x = np.array([128, 28, 208, 5, 250, 128])
    y = np.array([128, 68, 218, 17, 3, 200])
    direct = direct_dirty_image(uvw, freq, vis, weight, x, y, npix, npix, cell)
    peak = np.abs(direct).max()
    assert np.max(np.abs(image[y, x] - direct)) / peak <= 1e-5
    assert np.unravel_index(np.argmax(image), image.shape) == (128, 128)


def test_single_precision_default_is_accurate_to_its_epsilon():
    uvw = wide_field_uvw(seed=5)
    freq, npix, cell = 150e6, 128, 60 * ARCSEC
    vis = predict_visibilities(uvw, [freq], [30 * cell], [-20 * cell], np.array([[1.0]]))[:, 0]
    weight = np.ones(len(uvw))
    image = dirty_image(uvw, freq, vis, weight, npix, cell)
    x, y = np.array([34, 64, 10]), np.array([44, 64, 100])
    direct = direct_dirty_image(uvw, freq, vis, weight, x, y, npix, npix, cell)
    assert image.dtype == np.float32
    assert np.max(np.abs(image[y, x] - direct)) <= 1e-4
    assert image[44, 34] == pytest.approx(1.0, abs=1e-4)  # point source flux at its pixel


def test_natural_weights_are_the_visibility_weights():
    uvw = wide_field_uvw(200)
    w = np.random.default_rng(1).uniform(0.1, 3, 200)
    np.testing.assert_array_equal(imaging_weights(uvw, 150e6, w, scheme="natural", npix=64, cell_rad=ARCSEC * 60), w)


def test_uniform_weights_give_each_occupied_uv_cell_equal_total_weight():
    # Many visibilities pile into few uv cells; after uniform weighting every occupied cell sums
    # to the same total (counting the Hermitian mirror, which shares the cell's density).
    rng = np.random.default_rng(3)
    npix, cell, freq = 64, 120 * ARCSEC, 150e6
    uv_cell_m = 299792458.0 / freq / (npix * cell)
    centres = rng.integers(1, 20, (30, 2)) * uv_cell_m
    uvw = np.zeros((3000, 3))
    uvw[:, :2] = centres[rng.integers(0, 30, 3000)] + rng.uniform(-0.3, 0.3, (3000, 2)) * uv_cell_m
    w = rng.uniform(0.5, 2.0, 3000)
    uniform = imaging_weights(uvw, freq, w, scheme="uniform", npix=npix, cell_rad=cell)
    _, cells = gridded_weight_density(uvw, freq, w, npix, cell)
    totals = np.bincount(cells, weights=uniform)
    occupied = totals[totals > 0]
    np.testing.assert_allclose(occupied, occupied[0], rtol=1e-9)


def test_briggs_weighting_spans_uniform_to_natural():
    rng = np.random.default_rng(4)
    uvw = rng.normal(0, 300, (5000, 3))
    w = np.ones(5000)
    kwargs = dict(npix=128, cell_rad=30 * ARCSEC)
    natural = imaging_weights(uvw, 150e6, w, scheme="natural", **kwargs)
    uniform = imaging_weights(uvw, 150e6, w, scheme="uniform", **kwargs)
    robust_high = imaging_weights(uvw, 150e6, w, scheme="briggs", robust=2.0, **kwargs)
    robust_low = imaging_weights(uvw, 150e6, w, scheme="briggs", robust=-2.0, **kwargs)
    # robust 2: close to natural (equal weights stay nearly equal); robust -2: proportional to uniform
    assert robust_high.std() / robust_high.mean() < 0.05
    ratio = robust_low / uniform
    assert ratio.std() / ratio.mean() < 0.02
    # robust 0 sits between: the dense uv centre is down-weighted relative to natural
    mid = imaging_weights(uvw, 150e6, w, scheme="briggs", robust=0.0, **kwargs)
    inner = np.hypot(uvw[:, 0], uvw[:, 1]) < 100
    assert mid[inner].mean() / mid[~inner].mean() < natural[inner].mean() / natural[~inner].mean()


@pytest.mark.parametrize("bmaj,bmin,bpa", [(100.0, 60.0, 30.0), (80.0, 80.0, 0.0), (120.0, 50.0, -70.0)])
def test_beam_fit_recovers_a_gaussian(bmaj, bmin, bpa):
    cell = 10 * ARCSEC
    beam = {"bmaj_deg": bmaj / 3600, "bmin_deg": bmin / 3600, "bpa_deg": bpa}
    fitted = fit_restoring_beam(gaussian_beam_image(beam, (128, 128), cell), cell)
    assert fitted["bmaj_deg"] * 3600 == pytest.approx(bmaj, rel=1e-3)
    assert fitted["bmin_deg"] * 3600 == pytest.approx(bmin, rel=1e-3)
    if bmaj != bmin:
        assert fitted["bpa_deg"] == pytest.approx(bpa, abs=0.1)


def test_beam_position_angle_is_east_of_north():
    # A beam elongated along RA (east-west, the x axis) has PA 90; along Dec (y axis) PA 0.
    cell = 10 * ARCSEC
    y, x = np.mgrid[0:64, 0:64] - 32
    along_x = np.exp(-0.5 * ((x / 6.0) ** 2 + (y / 2.0) ** 2))
    along_y = np.exp(-0.5 * ((x / 2.0) ** 2 + (y / 6.0) ** 2))
    assert abs(fit_restoring_beam(along_x, cell)["bpa_deg"]) == pytest.approx(90.0, abs=0.1)
    assert fit_restoring_beam(along_y, cell)["bpa_deg"] == pytest.approx(0.0, abs=0.1)
