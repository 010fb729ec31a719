"""Source measurement by fitting (kernels/photometry.py) and Faraday complexity from significant
clean components, checked against simulated truth: sub-pixel positions at 3 pixels per beam, beams
that shrink with frequency, steep and flat spectra, noise correlated over the beam, a resolved
source and a two-component Faraday spectrum."""

import numpy as np
import pytest

from conftest import REPO, run_snakemake
from spectropol.kernels.faraday import (
    faraday_complexity,
    faraday_depth_block,
    faraday_grid,
    fdf_noise_theoretical,
    lambda_squared,
)
from spectropol.kernels.photometry import beam_covariance_px, fit_gaussian, forced_fluxes, gaussian_shape
from spectropol.stages.simulate import ImageSource, correlated_noise, sky_cube


def test_fitted_point_source_flux_is_unbiased_at_any_sub_pixel_offset():
    """3 pixels per beam: the nearest pixel loses up to 8%; the fit and forced photometry do not, and
    their errors describe their scatter."""
    rng = np.random.default_rng(7)
    beam = beam_covariance_px(3.0, 2.5, 35.0, 1.0)
    yy, xx = np.mgrid[0:48, 0:48]
    for snr in (1000.0, 30.0):
        ratio, pulls, nearest, forced, resolved = [], [], [], [], 0
        for _ in range(60):
            x0, y0 = 24 + rng.uniform(-0.5, 0.5), 24 + rng.uniform(-0.5, 0.5)
            image = snr * gaussian_shape(beam, xx - x0, yy - y0) + correlated_noise(rng, (48, 48), beam)
            fit = fit_gaussian(image, round(x0), round(y0), beam, 1.0)
            ratio.append(fit.integrated / snr)
            pulls.append((fit.integrated - snr) / fit.integrated_err)
            resolved += fit.resolved
            nearest.append(image[round(y0), round(x0)] / snr)
            forced.append(forced_fluxes(image[None, 14:35, 14:35], x0, y0, beam, 14, 14)[0][0] / snr)
        ratio = np.array(ratio)
        if snr == 1000.0:
            assert np.abs(ratio - 1).max() < 0.01  # within 1% for every offset
            assert np.abs(np.array(forced) - 1).max() < 0.01
            assert min(nearest) < 0.97  # the offsets are real: the nearest pixel loses flux
        assert abs(ratio.mean() - 1) < 3 * ratio.std() / np.sqrt(len(ratio)) + 0.002
        assert 0.8 < np.std(pulls) < 1.3
        assert resolved <= 2  # of 60 point sources


def test_resolved_source_gets_its_integrated_flux():
    rng = np.random.default_rng(3)
    beam = beam_covariance_px(3.0, 3.0, 0.0, 1.0)
    source = beam_covariance_px(4.0, 2.5, 60.0, 1.0)  # the source itself, larger than the beam
    seen = beam + source
    total = 200.0  # Jy: peak in Jy/beam is total x det(beam)^1/2 / det(seen)^1/2
    yy, xx = np.mgrid[0:64, 0:64]
    peak = total * np.sqrt(np.linalg.det(beam) / np.linalg.det(seen))
    image = peak * gaussian_shape(seen, xx - 31.7, yy - 32.2) + correlated_noise(rng, (64, 64), beam)
    fit = fit_gaussian(image, 32, 32, beam, 1.0)
    assert fit.resolved
    assert fit.integrated == pytest.approx(total, abs=0.02 * total + 3 * fit.integrated_err)
    np.testing.assert_allclose(fit.intrinsic(beam), source, atol=0.15 * np.abs(source).max())


def simple_and_two_component_spectra(rng, freqs, n, snr, sigma, two=False, spectral_index=None):
    """Q, U of n Faraday-thin sources (or two components 1-2 FWHM apart) at FDF SNR ``snr``, their
    polarised flux following (nu / nu_mid)^spectral_index (an array of n) where given."""
    grid = faraday_grid(freqs)
    noise = fdf_noise_theoretical(grid, np.full(len(freqs), sigma))
    l2 = lambda_squared(freqs)
    rm = rng.uniform(-0.3, 0.3, n) * grid.phi[-1]
    p = snr * noise * np.exp(2j * (rng.uniform(0, np.pi, n)[None] + rm[None] * l2[:, None]))
    if two:
        separation = grid.fwhm * rng.uniform(1.0, 2.0, n)
        p = p + rng.uniform(0.3, 1.0, n) * snr * noise * np.exp(
            2j * (rng.uniform(0, np.pi, n)[None] + (rm + separation)[None] * l2[:, None]))
    if spectral_index is not None:
        p = p * (freqs[:, None] / np.sqrt(freqs.min() * freqs.max())) ** spectral_index[None]
    q = (p.real + sigma * rng.standard_normal(p.shape)).astype(np.float32)
    u = (p.imag + sigma * rng.standard_normal(p.shape)).astype(np.float32)
    return grid, noise, q, u, rm


@pytest.mark.parametrize("band", [(1.0e9, 1.5e9, 64), (120e6, 168e6, 96)], ids=["L-band", "LOFAR HBA"])
def test_complexity_flags_two_components_and_not_simple_sources(band):
    """Targets of #13: <= 5% of simple sources flagged at any SNR from 8 to 1000; >= 90% of two
    components >= 1 FWHM apart (the second 0.3-1 times the first) flagged at SNR >= 50."""
    rng = np.random.default_rng(11)
    freqs = np.linspace(*band)
    for snr in (8, 30, 100, 1000):
        for two in (False, True):
            grid, noise, q, u, _ = simple_and_two_component_spectra(rng, freqs, 150, snr, 1.0, two)
            block = faraday_depth_block(q, u, grid, noise, clean_cutoff=3 * noise, candidate_snr=0)
            components = block.spectra(np.arange(q.shape[1]))["clean_components"]
            complexity = faraday_complexity(components, grid, block.peaks["fdf_noise"])
            rate = complexity.complex.mean()
            if not two:
                assert rate <= 0.05, (snr, rate)
                assert (complexity.ncomp == 1).mean() >= 0.95
            elif snr >= 50:
                assert rate >= 0.9, (snr, rate)


@pytest.mark.parametrize("band", [(1.0e9, 1.5e9, 64), (120e6, 168e6, 96)], ids=["L-band", "LOFAR HBA"])
def test_catalogue_complexity_flags_meet_the_targets(band):
    """The catalogue's complex_flag (m2_CC and Ncomp, or sigma_add of what the thin component at
    the peak leaves in Q, U): the same targets, with spectral indices (steep and flat) in the
    spectra of simple sources, which the Stokes I model divides out."""
    from spectropol.kernels.stokes_i import fit_stokes_i
    from spectropol.options import CatalogueOptions
    from spectropol.stages.catalogue import source_complexity, source_faraday

    rng = np.random.default_rng(12)
    freqs = np.linspace(*band)
    reference = float(np.sqrt(freqs.min() * freqs.max()))
    options = CatalogueOptions()
    for snr in (8, 30, 100, 1000):
        for two in (False, True):
            alpha = rng.uniform(-1.5, 0.0, 100)
            grid, noise, q, u, _ = simple_and_two_component_spectra(rng, freqs, 100, snr, 1.0, two, alpha)
            shape = (freqs[:, None] / reference) ** alpha[None]
            stokes_i = 200.0 * snr * noise * shape  # 0.5% polarised: I far brighter than its noise
            sigma = np.ones_like(q)
            models = [fit_stokes_i(freqs, stokes_i[:, k] + rng.standard_normal(len(freqs)), np.ones(len(freqs)),
                                   reference) for k in range(q.shape[1])]
            model_shape = np.column_stack([m(freqs) / m.flux for m in models])
            measured = source_faraday(q, u, grid, None, options)
            flags = source_complexity(freqs, q / model_shape, u / model_shape, sigma / model_shape, measured, grid,
                                      options)
            rate = (flags.m2_flag | flags.sigma_add_flag).mean()
            if not two:
                assert rate <= 0.05, (snr, rate, flags.m2_flag.mean(), flags.sigma_add_flag.mean())
            elif snr >= 50:
                assert rate >= 0.9, (snr, rate)


def test_measuring_sources_holds_what_the_catalogue_asks_for(monkeypatch):
    """benchmarks/scale.py at 4,096 channels: the catalogue went over its memory request, having
    made the whole synthesis matrix (nphi x nchan) for a few sources' spectra, and refine_peak an
    exponential of every depth their noise components held. What source_faraday allocates
    (tracemalloc, which numpy reports to) on 4,096 channels is within source_faraday_mb, what the
    request counts, and well below the matrix; measured in passes of sources, every source gets
    what it gets measured with all the others at once."""
    import tracemalloc

    from spectropol.options import CatalogueOptions
    from spectropol.stages import catalogue
    from spectropol.stages.faraday import synthesis_matrix_mb

    rng = np.random.default_rng(21)
    freqs = np.linspace(120e6, 168e6, 4096)
    grid = faraday_grid(freqs, dphi=0.25, phi_max=500.0)  # 4,001 depths
    n = catalogue.SOURCES_PER_PASS + 20
    noise = fdf_noise_theoretical(grid, np.ones(len(freqs)))
    rm = rng.uniform(-50, 50, n)
    p = 30 * noise * np.exp(2j * (rng.uniform(0, np.pi, n)[None] + rm[None] * lambda_squared(freqs)[:, None]))
    q, u = ((part + rng.standard_normal(p.shape)).astype(np.float32) for part in (p.real, p.imag))
    catalogue.source_faraday(q[:200, :2], u[:200, :2], faraday_grid(freqs[:200]), None, CatalogueOptions())  # compiled
    tracemalloc.start()
    try:
        passes = catalogue.source_faraday(q, u, grid, None, CatalogueOptions())
        peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    assert peak_mb <= catalogue.source_faraday_mb(len(freqs), len(grid.phi)), peak_mb
    assert peak_mb < 0.8 * synthesis_matrix_mb(len(freqs), len(grid.phi)), peak_mb
    monkeypatch.setattr(catalogue, "SOURCES_PER_PASS", n)
    at_once = catalogue.source_faraday(q, u, grid, None, CatalogueOptions())
    for name in ("peak_phi", "peak_pi", "fdf_noise", "snr", "m2_cc", "ncomp", "complex"):
        np.testing.assert_allclose(passes[name], at_once[name], rtol=1e-5, err_msg=name)
    assert np.std((passes["peak_phi"] - rm) / passes["peak_phi_err"]) < 1.5


def test_leakage_estimate_finds_a_flat_fraction_of_stokes_i():
    """A source far from phi = 0 plus 0.4% of its Stokes I leaked into Q (flat in frequency): the
    estimate finds the leaked fraction from what the source's thin component leaves."""
    from spectropol.kernels.faraday import thin_component_residual
    from spectropol.stages.catalogue import leakage_estimate

    rng = np.random.default_rng(4)
    freqs = np.linspace(120e6, 168e6, 96)
    l2 = lambda_squared(freqs)
    found = []
    for _ in range(20):
        flux_i, p, rm = 1.0, 0.05, rng.choice([-1, 1]) * rng.uniform(5, 20)
        pol = p * flux_i * np.exp(2j * (0.3 + rm * l2)) + 0.004 * flux_i
        sigma = np.full(96, 1e-3)
        q = pol.real + sigma * rng.standard_normal(96)
        u = pol.imag + sigma * rng.standard_normal(96)
        residual = thin_component_residual(freqs, q, u, sigma, rm)
        found.append(leakage_estimate(residual, sigma, flux_i))
    assert np.median(found) == pytest.approx(0.004, rel=0.1)


def test_rm_errors_from_the_spectrum_describe_the_scatter():
    """(RM - truth) / rm_err over many sources has a standard deviation between 0.8 and 1.3, the
    noise taken from each source's own residual FDF."""
    from spectropol.options import CatalogueOptions
    from spectropol.stages.catalogue import source_faraday

    rng = np.random.default_rng(5)
    freqs = np.linspace(120e6, 168e6, 96)
    pulls = []
    for snr in (10, 40, 300):
        grid, _, q, u, rm = simple_and_two_component_spectra(rng, freqs, 150, snr, 1.0)
        measured = source_faraday(q, u, grid, None, CatalogueOptions())
        pulls.append((measured["peak_phi"] - rm) / measured["peak_phi_err"])
        assert not measured["complex"].any()
    pulls = np.concatenate(pulls)
    assert 0.8 < np.std(pulls) < 1.3, np.std(pulls)


SKY = [  # x, y (pixels), I (Jy at 144 MHz), alpha, p, RM (rad/m^2), chi0 (deg); sub-pixel everywhere
    (20.3, 22.8, 0.50, -0.7, 0.05, 3.1, 20.0),
    (60.5, 20.5, 0.20, -1.5, 0.10, -7.4, 100.0),   # steep, half a pixel off in both
    (101.9, 24.1, 0.08, 0.0, 0.20, 12.2, 45.0),   # flat
    (22.6, 61.4, 1.50, -0.8, 0.02, -1.3, 160.0),
    (63.2, 63.7, 0.05, -0.5, 0.30, 25.0, 70.0),
    (100.4, 60.1, 0.30, -0.9, 0.06, -18.6, 10.0),
    (24.8, 101.3, 0.12, -0.3, 0.10, 6.6, 130.0),
    (31.9, 104.5, 0.80, -0.7, 0.01, -4.0, 80.0),   # near the previous one, brighter in I
    (98.7, 99.2, 0.40, -0.6, 0.04, 0.9, 30.0),
    (104.2, 66.1, 2.00, -0.8, 0.00, 0.0, 0.0),     # unpolarised, bright, beside (100.4, 60.1)
    (44.3, 82.6, 1.00, -0.7, 0.006, 0.0, 50.0),    # 0.6% at phi = 0: what instrumental leakage looks like
]
LEAKY = (44.3, 82.6)
V_FRACTION = {LEAKY: 0.01, (22.6, 61.4): -0.004}  # Stokes V / I of these; 0 elsewhere


def imaged_catalogue(tmp, sky, rng, npix=128, sigma=2e-3, options=None, v_fraction=None, **cube):
    """``sky`` (x, y, I at 144 MHz, alpha, p, RM, chi0; V/I from ``v_fraction`` by (x, y)) as a
    48-channel npix^2 cube at 3 pixels per beam (stages.simulate.sky_cube, with ``cube``'s other
    settings), run through the one pass and the catalogue (``options``, the defaults unless given):
    (table, data, freqs)."""
    from astropy.table import Table

    from spectropol.options import CatalogueOptions, DaskOptions, MomentsOptions, RMCleanOptions, RMSynthesisOptions
    from spectropol.stages.catalogue import CATALOGUE_FILES, build_catalogue
    from spectropol.stages.faraday import faraday_depth

    freqs = np.linspace(120e6, 168e6, 48)
    v_fraction = v_fraction or {}
    sources = [ImageSource(x, y, flux, alpha, ((p, rm, chi0),), v_fraction.get((x, y), 0.0))
               for x, y, flux, alpha, p, rm, chi0 in sky]
    data = sky_cube(tmp / "cube.zarr", sources, rng, npix=npix, freqs_hz=freqs, sigma=sigma, **cube)
    out = {"peaks": tmp / "peaks.zarr", "candidates": tmp / "fdf_candidates.zarr"}
    faraday_depth(tmp / "cube.zarr", out, tmp / "faraday.json", RMSynthesisOptions(phi_max_rad_m2=40.0),
                  RMCleanOptions(), dask=DaskOptions(threads=1), moments=MomentsOptions(),
                  moments_out=tmp / "moments.zarr", moments_qa=tmp / "moments.json")
    paths = {kind: tmp / name for kind, name in CATALOGUE_FILES.items() if kind in ("votable", "skymodel")}
    build_catalogue(tmp / "cube.zarr", tmp / "moments.zarr", tmp / "peaks.zarr", paths, tmp / "catalogue.json",
                    options or CatalogueOptions())
    return Table.read(paths["votable"]), data, freqs


@pytest.fixture(scope="module")
def fitted_catalogue(tmp_path_factory):
    """SKY imaged (imaged_catalogue)."""
    tmp = tmp_path_factory.mktemp("fitted")
    return *imaged_catalogue(tmp, SKY, np.random.default_rng(2), v_fraction=V_FRACTION), tmp


@pytest.mark.slow
def test_rm_and_flux_errors_on_images_describe_the_scatter(tmp_path):
    """Item 2 of #13 on images: (RM - truth) / rm_err and (I - truth) / stokesI_err of 72 sources
    at random sub-pixel positions, SNR 10-200, steep and flat spectra, in 3 fields of correlated
    noise: standard deviations between 0.8 and 1.3 (PI's errors are conservative, see below), and
    no simple source flagged complex beyond 5%."""
    rng = np.random.default_rng(21)
    pulls = {"rm": [], "polint": [], "stokesI": []}
    flagged = total = 0
    for field in range(3):
        sky = []
        for y in np.linspace(20, 236, 4):
            for x in np.linspace(20, 236, 6):
                flux = rng.uniform(0.05, 1.0)
                snr = 10 ** rng.uniform(1.0, 2.3)  # of the FDF peak: noise 2 mJy / sqrt(48) per channel
                sky.append((x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5), flux, rng.uniform(-1.2, 0.0),
                            min(0.7, snr * 2e-3 / np.sqrt(48) / flux), rng.uniform(-25, 25), rng.uniform(0, 180)))
        table, _, freqs = imaged_catalogue(tmp_path / f"field{field}", sky, rng, npix=256)
        reference = table["reffreq_I"][0] if len(table) else 144e6
        for x, y, flux, alpha, p, rm, chi0 in sky:
            distance = np.hypot(table["x_pix"] - x, table["y_pix"] - y)
            k = int(np.argmin(distance))
            if distance[k] > 1.0:
                continue
            row = table[k]
            truth_i = flux * (reference / 144e6) ** alpha
            pulls["rm"].append((row["rm"] - rm) / row["rm_err"])
            pulls["polint"].append((row["polint"] - p * truth_i) / row["polint_err"])
            pulls["stokesI"].append((row["stokesI"] - truth_i) / row["stokesI_err"])
            flagged += row["complex_flag"] == "Y"
            total += 1
    assert total >= 60
    for name in ("rm", "stokesI"):
        assert 0.8 < np.std(pulls[name]) < 1.3, (name, np.std(pulls[name]), np.mean(pulls[name]))
    # polint_err is the robust rms of the source's own clean residual FDF, which keeps some of a
    # steep spectrum's mismatch with the RMSF: conservative (std 0.76-1.05 over seeds), never small
    assert 0.6 < np.std(pulls["polint"]) < 1.3 and abs(np.mean(pulls["polint"])) < 0.5, np.std(pulls["polint"])
    assert flagged <= 0.05 * total


def test_catalogue_measures_every_source_at_its_fitted_position(fitted_catalogue):
    table, data, freqs, _ = fitted_catalogue
    reference = table["reffreq_I"][0]
    lost_at_nearest_pixel = []
    for x, y, flux, alpha, p, rm, chi0 in SKY:
        if p == 0:
            continue
        distance = np.hypot(table["x_pix"] - x, table["y_pix"] - y)
        k = int(np.argmin(distance))
        row = table[k]
        assert distance[k] < 0.25, (x, y, distance[k])  # a twelfth of the beam
        truth_i = flux * (reference / 144e6) ** alpha
        assert row["stokesI"] == pytest.approx(truth_i, abs=0.01 * truth_i + 3 * row["stokesI_err"]), (x, y)
        assert row["spectral_index"] == pytest.approx(alpha, abs=0.02 + 3 * row["spectral_index_err"]), (x, y)
        assert row["polint"] == pytest.approx(p * truth_i, abs=0.01 * p * truth_i + 3 * row["polint_err"]), (x, y)
        assert abs(row["rm"] - rm) < 4 * row["rm_err"], (x, y)
        assert row["complex_flag"] == "N" and row["Ncomp"] == 1 and row["flux_type"] == "Gaussian fit - Peak"
        assert not row["flag_resolved"]
        nearest = data[:, 0, round(y), round(x)].mean() / (flux * (freqs / 144e6) ** alpha).mean()
        lost_at_nearest_pixel.append(1 - nearest)
    assert max(lost_at_nearest_pixel) > 0.03  # what reading the nearest pixel would have cost
    assert len(table) == sum(p > 0 for _, _, _, _, p, _, _ in SKY)


def test_leakage_like_source_is_flagged_and_only_it(fitted_catalogue):
    table, _, _, _ = fitted_catalogue
    leaky = np.hypot(table["x_pix"] - LEAKY[0], table["y_pix"] - LEAKY[1]) < 1
    assert leaky.sum() == 1
    assert list(table["leakage_flag"]) == list(leaky)  # (98.7, 99.2) at 0.9 rad/m^2 is 4% polarised: real
    assert table["leakage"][leaky][0] == pytest.approx(0.006, rel=0.2)
    # elsewhere what the thin components leave at phi = 0 is noise: |L| of noise sigma_F / I each
    noise = table["fdf_noise"] / table["stokesI"]
    assert np.all(table["leakage"][~leaky] < 4 * noise[~leaky])


def test_stokes_v_and_its_fraction_of_i_are_measured(fitted_catalogue):
    """stokesV and v_over_i: Stokes V at the reference frequency, fitted with the Stokes I model's
    shape (as a leak of I into V follows it), within 3 sigma of truth for a 1% and a -0.4% source
    and of zero for the rest; the errors from the V images' noise."""
    table, _, _, _ = fitted_catalogue
    pulls = []
    for row in table:
        truth = next((v for (x, y), v in V_FRACTION.items() if np.hypot(row["x_pix"] - x, row["y_pix"] - y) < 1), 0.0)
        pulls.append((row["stokesV"] - truth * row["stokesI"]) / row["stokesV_err"])
        assert row["v_over_i"] == pytest.approx(row["stokesV"] / row["stokesI"])
        assert abs(row["v_over_i"] - truth) < 3 * row["stokesV_err"] / row["stokesI"] + 2e-4, (row["x_pix"], truth)
    assert len(pulls) >= 8 and np.std(pulls) < 1.5, pulls
    leaky = table[np.hypot(table["x_pix"] - LEAKY[0], table["y_pix"] - LEAKY[1]) < 1][0]
    assert leaky["v_over_i"] / (leaky["stokesV_err"] / leaky["stokesI"]) > 5  # 1% is detected


def test_catalogue_meets_the_rmtable_standard_and_reads_without_warnings(fitted_catalogue, tmp_path, capsys):
    """Every column of the RMTable standard (the rmtable package's own list), its units, its
    vocabularies and limits as the package checks them; the VOTable parsed strictly by astropy."""
    import warnings

    from astropy import units as u
    from astropy.io import votable
    from rmtable import RMTable

    def standard_unit(text):  # the standard writes VOUnits (rad.m-2), and "day"
        try:
            return u.Unit(text, format="vounit")
        except ValueError:
            return u.Unit(text)

    table, _, _, _ = fitted_catalogue
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the package has no fill value for our extra flags
        checked = RMTable(table)
    for name in checked.standard_columns:
        assert name in table.colnames, name
        unit = checked.standard_units[name]
        if unit:
            assert table[name].unit.to(standard_unit(unit)) == pytest.approx(1.0), name
    capsys.readouterr()
    checked.verify_limits()
    checked.verify_standard_strings()
    report = capsys.readouterr().out
    assert "All columns conform with standard." in report and "No problems found" in report, report
    assert set(table["complex_test"]) <= set(checked.standard_complexity_test)
    for flag in ("snr_flag", "channel_flag", "leakage_flag", "complex_sigma_add_flag", "complex_M2_CC_flag",
                 "local_rm_flag", "is_blended_flag"):
        assert table[flag].dtype == bool, flag
    path = tmp_path / "again.vot"
    table.write(path, format="votable")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        votable.parse(path, verify="exception")


def test_spectra_read_a_few_channels_at_a_time_are_those_read_at_once(fitted_catalogue, monkeypatch):
    """The catalogue reads the cube's cut-outs in slabs of channels (memory flat in the channel
    count: 923 MB at 256 channels of 256^2 chunks before); a channel at a time gives the same
    table, every number equal to 1e-12 (the sums of the fits are vectorised in other batches)."""
    from astropy.table import Table

    import spectropol.io.cube as cube_io
    import spectropol.stages.catalogue as catalogue_stage
    from spectropol.options import CatalogueOptions

    table, _, freqs, tmp = fitted_catalogue
    assert len(cube_io.cutout_slabs(tmp / "cube.zarr", 3, len(table), 10)) == 1  # the fixture's: all at once
    monkeypatch.setattr(cube_io, "CUTOUT_MB", 1e-6)
    assert cube_io.cutout_slabs(tmp / "cube.zarr", 3, len(table), 10) == [slice(c, c + 1) for c in range(len(freqs))]
    reads = []
    monkeypatch.setattr(catalogue_stage, "pixel_cutouts", lambda *args, **kwargs: reads.append(kwargs["channels"])
                        or cube_io.pixel_cutouts(*args, **kwargs))
    path = tmp / "slabs.vot"
    catalogue_stage.build_catalogue(tmp / "cube.zarr", tmp / "moments.zarr", tmp / "peaks.zarr", {"votable": path},
                                    tmp / "slabs.json", CatalogueOptions())
    assert len(reads) >= len(freqs) and {r.stop - r.start for r in reads} == {1}
    slabs = Table.read(path)
    assert len(slabs) == len(table)
    for name in table.colnames:
        if table[name].dtype.kind in "fi":
            np.testing.assert_allclose(np.asarray(slabs[name]), np.asarray(table[name]), rtol=1e-12, atol=0,
                                       err_msg=name)


def test_fractional_synthesis_agrees_with_polarised_intensity(fitted_catalogue):
    """RM synthesis of q = Q/I, u = U/I through each source's Stokes I model: the same RMs and
    polarised intensities within their errors, rm_method saying which was used."""
    from astropy.table import Table

    from spectropol.options import CatalogueOptions
    from spectropol.stages.catalogue import build_catalogue

    table, _, _, tmp = fitted_catalogue
    path = tmp / "fractional.vot"
    build_catalogue(tmp / "cube.zarr", tmp / "moments.zarr", tmp / "peaks.zarr", {"votable": path},
                    tmp / "fractional.json", CatalogueOptions(fractional=True))
    fractional = Table.read(path)
    assert set(fractional["rm_method"]) == {"RM Synthesis - Fractional polarization"}
    assert set(table["rm_method"]) == {"RM Synthesis - Pol. Int"}
    assert len(fractional) == len(table)
    for row in table:
        k = int(np.argmin(np.hypot(fractional["x_pix"] - row["x_pix"], fractional["y_pix"] - row["y_pix"])))
        other = fractional[k]
        assert abs(other["rm"] - row["rm"]) < 2 * row["rm_err"]
        assert other["polint"] == pytest.approx(row["polint"], abs=3 * row["polint_err"])
        assert other["fracpol"] == pytest.approx(row["fracpol"], abs=3 * row["fracpol_err"])


@pytest.mark.slow
def test_errors_on_imaged_visibilities_describe_the_scatter(tmp_path):
    """Item 2 of #13 on visibilities: two simulated observations (32 channels, 120-184 MHz) of 22
    polarised sources each at random positions, SNR 10-700, steep and flat spectra, imaged and
    CLEANed by the workflow. The noise of a restored image is correlated like the dirty beam, and
    CLEAN leaves residuals around bright sources: RM errors from the noise at each source (the
    scatter of its Stokes V spectrum) describe the RM scatter, (RM - truth) / rm_err with a
    standard deviation between 0.8 and 1.3 (0.35 with errors from the source's residual FDF)."""
    import yaml
    from astropy.table import Table

    from spectropol.stages.simulate import load_sky_model

    base = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    pulls, bright = {"rm": [], "polint": []}, []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        sources = []
        for k in range(22):
            pol, p = 10 ** rng.uniform(np.log10(4e-3), np.log10(0.3)), rng.uniform(0.02, 0.3)
            sources.append({"name": f"S{k:02d}", "offset_arcsec": [float(v) for v in rng.uniform(-4400, 4400, 2)],
                            "stokes_i_jy": float(pol / p), "spectral_index": float(rng.uniform(-1.2, 0.0)),
                            "pol_fraction": float(p), "rm_rad_m2": float(rng.uniform(-8, 8)),
                            "pol_angle_deg": float(rng.uniform(0, 180)), "v_fraction": 0.0})
        workdir = tmp_path / f"sky{seed}"
        workdir.mkdir()
        (workdir / "sky.yaml").write_text(yaml.safe_dump({"reference_frequency_hz": 150e6, "sources": sources}))
        config = {"simulate": base["simulate"] | {"nchan": 32, "seed": seed, "skymodel": str(workdir / "sky.yaml")},
                  "imaging": base["imaging"], "clean": base["clean"], "cube": base["cube"]}
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        run_snakemake(workdir, "results/catalogue/catalogue.vot", "--configfile", str(workdir / "config.yaml"))
        table = Table.read(workdir / "results/catalogue/catalogue.vot")
        reference, truth = load_sky_model(workdir / "sky.yaml")
        cell, npix = np.deg2rad(config["imaging"]["cell_arcsec"] / 3600), config["imaging"]["size"]
        for source in truth:
            x, y = npix // 2 - source.l / cell, npix // 2 + source.m / cell
            distance = np.hypot(table["x_pix"] - x, table["y_pix"] - y)
            k = int(np.argmin(distance))
            if distance[k] > 1.5:
                continue
            row = table[k]
            truth_i = source.stokes_i_jy * (row["reffreq_I"] / reference) ** source.spectral_index
            pulls["rm"].append((row["rm"] - source.rm_rad_m2) / row["rm_err"])
            pulls["polint"].append((row["polint"] - source.pol_fraction * truth_i) / row["polint_err"])
            bright.append(row["snr_pol"] >= 100)
    bright = np.array(bright)
    assert len(bright) >= 40  # of 44; the rest are below 8 sigma
    assert 0.8 < np.std(pulls["rm"]) < 1.3, np.std(pulls["rm"])
    # PI: the thermal errors describe the fainter sources; above SNR 100 CLEAN's residuals add a
    # floor of ~0.8% that the catalogue cannot see (stated in config/README.md)
    faint = np.array(pulls["polint"])[~bright]
    assert 0.8 < np.std(faint) < 1.3 and abs(np.mean(faint)) < 0.5, (np.std(faint), np.mean(faint))


def test_every_bright_pixel_gets_a_stokes_i_model(tmp_path):
    """#13 item 4 per pixel: the one pass fits the Stokes I model to each pixel whose band-mean I
    reaches faraday.stokes_i_snr. At the centre pixel of sources on steep, flat and inverted
    spectra: I at nu0 within 0.5%, the spectral index within 0.02 and the fractional polarisation
    within 0.5% plus 3 sigma of truth; noise pixels get no model."""
    import zarr

    from spectropol.constants import SPEED_OF_LIGHT

    sky = [(24.0, 24.0, 1.0, -1.2, 0.05, 5.0, 10.0), (72.0, 30.0, 0.6, 0.0, 0.10, -9.0, 60.0),
           (40.0, 90.0, 0.4, 0.6, 0.20, 14.0, 120.0), (100.0, 100.0, 2.0, -0.7, 0.02, -3.0, 170.0)]
    table, data, freqs = imaged_catalogue(tmp_path, sky, np.random.default_rng(9))
    peaks = zarr.open_group(str(tmp_path / "peaks.zarr"), mode="r")
    reference = SPEED_OF_LIGHT / np.sqrt(float(peaks.attrs["lambda0_sq"]))
    maps = {name: peaks[name][...] for name in ("stokes_i_model", "spectral_index", "stokes_i_model_order",
                                                "fracpol", "snr")}
    for x, y, flux, alpha, p, *_ in sky:
        at = {name: float(m[int(y), int(x)]) for name, m in maps.items()}
        assert at["stokes_i_model"] == pytest.approx(flux * (reference / 144e6) ** alpha, rel=5e-3), (x, y)
        assert at["spectral_index"] == pytest.approx(alpha, abs=0.02), (x, y)
        assert abs(at["fracpol"] - p) < p * (0.005 + 3.0 / at["snr"]), (x, y, at["fracpol"])
        assert at["stokes_i_model_order"] in (0, 1, 2)
    # far from every source: no model (band-mean I below 10 sigma)
    assert np.isnan(maps["spectral_index"][60:70, 5:15]).all()
    modelled = np.isfinite(maps["stokes_i_model"])
    assert 4 * 9 <= modelled.sum() < 0.1 * modelled.size  # the sources' cores, not the noise
