"""RM synthesis, RM-CLEAN and FDF peaks against known spectra, RM-Tools and a plain loop."""

import json

import numpy as np
import pytest

from conftest import SHARED_DATA
from spectropol.kernels.faraday import (
    doubled_phi,
    faraday_grid,
    fdf_noise_theoretical,
    fdf_peak,
    lambda_squared,
    rm_clean_block,
    rm_synthesis_block,
    rmsf,
    robust_fdf_noise,
)

REFERENCE = SHARED_DATA / "rmtools-reference"


def polarised_spectrum(freqs, rm, chi0_deg, p0, spectral_index=0.0, reference_hz=None, sigma=0.0, seed=0):
    reference_hz = reference_hz or np.median(freqs)
    i = (freqs / reference_hz) ** spectral_index
    p = p0 * i * np.exp(2j * (np.deg2rad(chi0_deg) + rm * lambda_squared(freqs)))
    rng = np.random.default_rng(seed)
    return p.real + sigma * rng.standard_normal(len(freqs)), p.imag + sigma * rng.standard_normal(len(freqs))


@pytest.mark.parametrize("rm,chi0,p0", [(23.7, 40.0, 0.5), (-61.2, 155.0, 0.2), (0.4, 5.0, 0.8)])
def test_single_spectrum_recovers_rm_angle_and_amplitude(rm, chi0, p0):
    # 1-2 GHz, 128 channels, noise 0.02 per channel: each recovered quantity within 3 sigma of
    # its own quoted error.
    freqs = np.linspace(1.0e9, 2.0e9, 128)
    sigma = 0.02
    q, u = polarised_spectrum(freqs, rm, chi0, p0, sigma=sigma, seed=int(abs(rm) * 10))
    grid = faraday_grid(freqs)
    fdf = rm_synthesis_block(q[:, None], u[:, None], grid)
    noise = fdf_noise_theoretical(grid, np.full(len(freqs), sigma))
    clean, residual, _ = rm_clean_block(fdf, grid, 3 * noise)
    peak = {k: v[0] for k, v in fdf_peak(clean, grid, noise).items()}
    assert abs(peak["peak_phi"] - rm) < 3 * peak["peak_phi_err"]
    assert abs(peak["peak_pi_debiased"] - p0) < 3 * noise
    angle_error = (peak["pol_angle0_deg"] - chi0 + 90) % 180 - 90
    assert abs(angle_error) < 3 * peak["pol_angle0_err_deg"]
    # the residual is noise: its robust rms agrees with the theoretical FDF noise
    assert robust_fdf_noise(residual)[0] == pytest.approx(noise, rel=0.3)


def test_rmsf_peaks_at_zero_with_the_quoted_width():
    # Channels evenly spaced in lambda^2: the RMSF is a sinc whose FWHM is 3.79 / range, the
    # 3.8 / range that RM-Tools quotes (Dickey et al. 2019).
    lambda2 = np.linspace(0.03, 0.18, 300)
    freqs = 299792458.0 / np.sqrt(lambda2)
    grid = faraday_grid(freqs, oversample=200)
    spread = np.abs(rmsf(grid))
    assert spread[len(spread) // 2] == pytest.approx(1.0)
    above = grid.phi[spread >= 0.5]
    assert above.max() - above.min() == pytest.approx(grid.fwhm, rel=0.02)
    assert len(doubled_phi(grid)) == 2 * len(grid.phi) - 1


def direct_fdf_rows(q, u, grid):
    """F(phi) of each column of q, u (nchan, npix) as rows, in double precision, NaN channels of a
    pixel left out of its sum and normalisation: the definition, to check the fast routes against."""
    p = q.astype(np.float64) + 1j * u.astype(np.float64)
    finite = np.isfinite(p)
    weighted = np.where(finite, p, 0.0) * grid.weights[:, None]
    kernel = np.exp(-2j * np.outer(grid.phi, grid.lambda2 - grid.lambda0_sq))
    with np.errstate(invalid="ignore"):  # a pixel with no channel left: NaN
        return ((kernel @ weighted) / (grid.weights[:, None] * finite).sum(axis=0)).T


def test_nan_channels_drop_out_of_that_pixel_only():
    freqs = np.linspace(1.1e9, 1.4e9, 40)
    q, u = polarised_spectrum(freqs, 50.0, 10.0, 1.0)
    grid = faraday_grid(freqs)
    both_q = np.column_stack([q, q])
    both_u = np.column_stack([u, u])
    both_q[[3, 17, 18], 1] = np.nan
    fdf = rm_synthesis_block(both_q, both_u, grid)
    direct, full = direct_fdf_rows(both_q, both_u, grid)[::-1]  # (pixel 1 without its NaN channels, pixel 0)
    np.testing.assert_allclose(fdf[:, 1], direct, atol=2e-5)
    np.testing.assert_allclose(fdf[:, 0], full, atol=2e-5)


@pytest.mark.parametrize("band", ["lofar", "vla_decreasing", "askap_gaps"])
def test_fourier_synthesis_equals_the_direct_sum(band):
    # The non-uniform FFT route (spread onto a lambda^2 grid, FFT, divide by the kernel's transform)
    # against the sum itself: a bright thin source, noise pixels, variance weights that vary, a
    # pixel with blanked channels. Within 2e-6 of the brightest FDF (the matrix product's float32
    # error is about 2e-7; the imaging's own accuracy, ducc0's epsilon, is 2e-5), and within 2e-5
    # of each noise spectrum's own peak.
    from spectropol.kernels.faraday import FourierSynthesis, Scratch, rm_synthesis_rows, synthesis_operator

    freqs = {"lofar": np.linspace(120e6, 168e6, 256),
             "vla_decreasing": np.linspace(2.0e9, 1.0e9, 200),
             "askap_gaps": np.delete(np.linspace(800e6, 1088e6, 288), np.r_[40:70, 150:160])}[band]
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.5, 1.5, len(freqs))
    grid = faraday_grid(freqs, weights)
    operator = synthesis_operator(grid)
    assert isinstance(operator, FourierSynthesis), "on a FWHM/10 grid the FFT route is the cheaper"
    assert operator.band < len(grid.phi) / 3
    q = rng.standard_normal((len(freqs), 300)).astype(np.float32)
    u = rng.standard_normal((len(freqs), 300)).astype(np.float32)
    source_q, source_u = polarised_spectrum(freqs, 0.37 * grid.phi[-1], 30.0, 1000.0)
    q[:, 0] += source_q.astype(np.float32)
    u[:, 0] += source_u.astype(np.float32)
    q[10:25, 5] = np.nan
    fdf = rm_synthesis_rows(q, u, grid, operator, scratch=Scratch())
    expected = direct_fdf_rows(q, u, grid)
    assert fdf.shape == expected.shape == (300, len(grid.phi))
    error = np.abs(fdf - expected)
    assert error.max() < 2e-6 * np.abs(expected).max()
    assert (error[1:].max(axis=1) < 2e-5 * np.abs(expected[1:]).max(axis=1)).all()
    assert np.argmax(np.abs(fdf[0])) == np.argmax(np.abs(expected[0]))


def test_the_synthesis_route_is_the_matrix_where_the_fft_would_not_pay():
    # 64 channels on a grid coarse for their band (benchmarks/faraday.py's): the FFT and the
    # division by the kernel would cost more than the product; a step near the FWHM makes the band
    # wider than one period of the FFT, which the route cannot hold.
    # The product then runs as SymmetricSynthesis, on a grid not symmetric about 0 as the complex
    # matrix.
    import dataclasses

    from spectropol.kernels.faraday import SymmetricSynthesis, fourier_synthesis, synthesis_operator

    freqs = np.linspace(1.0e9, 1.5e9, 64)
    grid = faraday_grid(freqs, dphi=1.0, phi_max=200.0)
    assert isinstance(synthesis_operator(grid), SymmetricSynthesis)
    coarse = faraday_grid(freqs, oversample=1.0)
    assert fourier_synthesis(coarse) is None
    assert isinstance(synthesis_operator(coarse), SymmetricSynthesis)
    shifted = dataclasses.replace(grid, phi=grid.phi + 0.5)
    assert isinstance(synthesis_operator(shifted), np.ndarray)


@pytest.mark.parametrize("band,depths", [("wide_even", 400), ("vla_decreasing", 401), ("lofar_single_depth", 1)])
def test_symmetric_synthesis_equals_the_direct_sum(band, depths):
    # The product by F(-phi) = conj(F_Q - i F_U) (SymmetricSynthesis) against the double-precision
    # sum on every depth: an even number of depths (no phi = 0), decreasing frequencies, a single
    # depth; variance weights that vary, a bright source at a negative depth, noise, a pixel with
    # blanked channels and one with none left. Within float32 rounding of the product (1e-6 of the
    # brightest FDF, 1e-5 of each noise spectrum's peak).
    import dataclasses

    from spectropol.kernels.faraday import Scratch, SymmetricSynthesis, rm_synthesis_rows, symmetric_synthesis

    freqs = {"wide_even": np.linspace(1.0e9, 2.0e9, 96), "vla_decreasing": np.linspace(2.0e9, 1.0e9, 200),
             "lofar_single_depth": np.linspace(120e6, 168e6, 64)}[band]
    rng = np.random.default_rng(11)
    grid = faraday_grid(freqs, rng.uniform(0.5, 1.5, len(freqs)), dphi=2.0, phi_max=200.0)
    grid = dataclasses.replace(grid, phi=(np.arange(depths) - (depths - 1) / 2) * grid.dphi)
    operator = symmetric_synthesis(grid)
    assert isinstance(operator, SymmetricSynthesis)
    q, u = (rng.standard_normal((len(freqs), 1100)).astype(np.float32) for _ in range(2))
    source_q, source_u = polarised_spectrum(freqs, -0.37 * grid.phi[-1], 30.0, 1000.0)
    q[:, 0] += source_q.astype(np.float32)
    u[:, 0] += source_u.astype(np.float32)
    expected = direct_fdf_rows(q, u, grid)
    fdf = rm_synthesis_rows(q, u, grid, operator, scratch=Scratch())
    assert fdf.shape == expected.shape == (1100, depths)
    assert np.abs(fdf - expected).max() < 1e-6 * np.abs(expected).max()
    assert (np.abs(fdf - expected)[1:].max(axis=1) < 1e-5 * np.abs(expected[1:]).max(axis=1)).all()
    q[10:25, 5] = np.nan
    u[:, 6] = np.nan
    blanked = rm_synthesis_rows(q, u, grid, operator, scratch=Scratch())
    expected = direct_fdf_rows(q, u, grid)
    assert np.isnan(blanked[6]).all() and np.isnan(expected[6]).all()
    assert np.abs(blanked[5] - expected[5]).max() < 1e-5 * np.abs(expected[5]).max()
    # the other pixels as without the blanks (their rescaling by sum(w) / sum(w) is 1 to a float32 ulp)
    np.testing.assert_allclose(np.delete(blanked, [5, 6], axis=0), np.delete(fdf, [5, 6], axis=0), rtol=0,
                               atol=1e-6 * np.abs(fdf).max())


def reference_hogbom(fdf, grid, cutoff, gain=0.1, max_iter=1000):
    """The textbook one-pixel loop (Heald et al. 2009), to check the vectorised version against."""
    kernel = rmsf(grid, doubled_phi(grid))
    residual = fdf.astype(np.complex128).copy()
    components = np.zeros_like(residual)
    n = len(residual)
    for _ in range(max_iter):
        k = int(np.argmax(np.abs(residual)))
        if abs(residual[k]) < cutoff:
            break
        components[k] += gain * residual[k]
        residual -= gain * residual[k] * kernel[n - 1 - k : 2 * n - 1 - k]
    return residual, components


def test_vectorised_rm_clean_equals_the_one_pixel_loop():
    freqs = np.linspace(120e6, 180e6, 64)
    rng = np.random.default_rng(5)
    pixels = []
    for rm, p in [(3.0, 0.5), (-7.0, 0.3), (0.0, 0.0)]:
        q, u = polarised_spectrum(freqs, rm, 20.0, p, sigma=0.01, seed=int(rng.integers(1000)))
        q2, u2 = polarised_spectrum(freqs, rm + 4.0, 70.0, p / 2)  # a second component: Faraday complex
        pixels.append((q + q2, u + u2))
    q = np.column_stack([p[0] for p in pixels])
    u = np.column_stack([p[1] for p in pixels])
    grid = faraday_grid(freqs)
    fdf = rm_synthesis_block(q, u, grid)
    cutoff = 0.02
    _, residual, components = rm_clean_block(fdf, grid, cutoff)
    for k in range(3):
        ref_residual, ref_components = reference_hogbom(fdf[:, k], grid, cutoff)
        np.testing.assert_allclose(residual[:, k], ref_residual, atol=1e-4)
        np.testing.assert_allclose(components[:, k], ref_components, atol=1e-4)
    assert np.count_nonzero(components[:, 2]) == 0  # an unpolarised pixel gets no components


@pytest.fixture
def rmtools_reference():
    data = REFERENCE / "RMsynth1D_testdata.dat"
    if not data.exists():
        pytest.skip(f"{data} not present (../shared/data is not beside this checkout)")
    freq, i, q, u, di, dq, du = np.loadtxt(data).T
    synth = json.loads((REFERENCE / "RMsynth1D_referencevalues.json").read_text())
    clean = json.loads((REFERENCE / "RMclean1D_referencevalues.json").read_text())
    return freq, q, u, dq, synth, clean


def test_agrees_with_rmtools_published_values(rmtools_reference):
    # RM-Tools' defaults for this spectrum: inverse-variance weights (equal here), FWHM/10 sampling,
    # no Stokes I division (its fitted model is 1), 3-sigma RM-CLEAN cutoff, gain 0.1.
    freq, q, u, dq, synth, clean_ref = rmtools_reference
    grid = faraday_grid(freq, 1.0 / dq**2)
    assert grid.fwhm == pytest.approx(synth["fwhmRMSF"], rel=1e-6)
    assert grid.lambda0_sq == pytest.approx(synth["lam0Sq_m2"], rel=1e-6)
    noise = fdf_noise_theoretical(grid, dq)
    assert noise == pytest.approx(synth["dFDFth"], rel=1e-6)
    fdf = rm_synthesis_block(q[:, None], u[:, None], grid)
    peak = {k: v[0] for k, v in fdf_peak(fdf, grid, noise).items()}
    assert abs(peak["peak_phi"] - synth["phiPeakPIfit_rm2"]) < 0.01 * synth["fwhmRMSF"]
    assert peak["peak_pi"] == pytest.approx(synth["ampPeakPIfit"], rel=0.01)
    assert peak["peak_pi_debiased"] == pytest.approx(synth["ampPeakPIfitEff"], rel=0.01)
    assert peak["peak_phi_err"] == pytest.approx(synth["dPhiPeakPIfit_rm2"], rel=0.01)
    assert peak["pol_angle_deg"] == pytest.approx(synth["polAngleFit_deg"], abs=0.1)
    assert peak["pol_angle0_deg"] == pytest.approx(synth["polAngle0Fit_deg"], abs=0.1)

    cleaned, _, _ = rm_clean_block(fdf, grid, 3 * noise)
    peak = {k: v[0] for k, v in fdf_peak(cleaned, grid, noise).items()}
    assert abs(peak["peak_phi"] - clean_ref["phiPeakPIfit_rm2"]) < 0.01 * synth["fwhmRMSF"]
    assert peak["peak_pi"] == pytest.approx(clean_ref["ampPeakPIfit"], rel=0.01)


@pytest.mark.parametrize("steps_per_fwhm", [3, 5, 10])
def test_refined_peak_depth_is_unbiased_on_coarse_grids(steps_per_fwhm):
    # A LOFAR-like band (96 channels, 120-168 MHz), one Faraday-thin source at 2,000 noise
    # realisations of FDF SNR 500, its depth 0.37 of a grid step off a grid point (where a parabola
    # through the grid's samples errs most). The mean error of the refined depth must be < 0.1 of
    # the quoted error FWHM / (2 SNR); the parabola through the grid is shown to fail the same test
    # on the coarsest grid, so the test can tell them apart.
    freqs = np.linspace(120e6, 168e6, 96)
    fwhm = faraday_grid(freqs).fwhm
    grid = faraday_grid(freqs, dphi=fwhm / steps_per_fwhm, phi_max=40 * fwhm)
    rm = grid.phi[len(grid.phi) // 2 + 7] + 0.37 * grid.dphi
    trials, snr = 2000, 500.0
    sigma_fdf = 1.0 / snr
    sigma_channel = sigma_fdf * np.sqrt(len(freqs))  # uniform weights: FDF noise = sigma / sqrt(N)
    rng = np.random.default_rng(11)
    signal = np.exp(2j * (0.4 + rm * grid.lambda2))[:, None]
    p = signal + sigma_channel * (rng.standard_normal((len(freqs), trials))
                                  + 1j * rng.standard_normal((len(freqs), trials)))
    fdf = rm_synthesis_block(p.real.astype(np.float32), p.imag.astype(np.float32), grid)
    quoted = fwhm / (2 * snr)
    refined = fdf_peak(fdf, grid, sigma_fdf, channel_p=p)
    assert abs(np.mean(refined["peak_phi"] - rm)) < 0.1 * quoted
    # the quoted error describes the scatter (Brentjens & de Bruyn 2005 is an approximation: within 40%)
    assert 0.6 < np.std(refined["peak_phi"] - rm) / quoted < 1.4
    assert abs(np.mean(refined["peak_pi"]) - 1.0) < 3 * sigma_fdf / np.sqrt(trials) + sigma_fdf**2
    if steps_per_fwhm == 3:
        gridded = fdf_peak(fdf, grid, sigma_fdf)
        assert abs(np.mean(gridded["peak_phi"] - rm)) > 0.1 * quoted


def test_refined_peak_of_a_cleaned_spectrum_ignores_other_depths():
    # Two thin components 4 FWHM apart (1.0 and 0.6) on a grid of FWHM/3, noise-free: after
    # RM-CLEAN the brighter one's depth is found from the data less the other's components, so its
    # error is far below what the other's sidelobe makes of the dirty peak, and below the parabola
    # through the clean FDF's grid.
    freqs = np.linspace(120e6, 168e6, 96)
    fwhm = faraday_grid(freqs).fwhm
    grid = faraday_grid(freqs, dphi=fwhm / 3, phi_max=40 * fwhm)
    rm_bright = 3.21
    rm_faint = rm_bright + 4.0 * fwhm
    p = (np.exp(2j * (0.2 + rm_bright * grid.lambda2)) + 0.6 * np.exp(2j * (1.1 + rm_faint * grid.lambda2)))[:, None]
    fdf = rm_synthesis_block(p.real, p.imag, grid)
    clean, _, components = rm_clean_block(fdf, grid, 1e-3)
    peeled = fdf_peak(clean, grid, 1e-3, channel_p=p, components=components)
    unpeeled = fdf_peak(clean, grid, 1e-3, channel_p=p)
    gridded = fdf_peak(clean, grid, 1e-3)
    error = abs(peeled["peak_phi"][0] - rm_bright)
    assert error < 2e-4 * fwhm
    assert abs(unpeeled["peak_phi"][0] - rm_bright) > 10 * error
    assert abs(gridded["peak_phi"][0] - rm_bright) > 10 * error
    assert peeled["peak_pi"][0] == pytest.approx(1.0, abs=0.01)


def test_grid_peaks_are_rmtools_parabola_vertices():
    # The peak search against RM-Tools' own parabola (RMutils.util_misc.calc_parabola_vertex, which
    # measure_FDF_parms fits through |F| at the largest sample and its neighbours): noise spectra,
    # sources at sub-step depths, peaks on the grid's ends (no parabola: the sample itself) and rows
    # holding NaN or inf (no peak), in float32 as the Faraday pass gives them.
    from RMutils.util_misc import calc_parabola_vertex

    from spectropol.kernels.faraday import row_peaks

    rng = np.random.default_rng(8)
    n, nphi = 3000, 201
    phi = np.arange(nphi) - 100.0
    fdf = (rng.standard_normal((n, nphi)) + 1j * rng.standard_normal((n, nphi))).astype(np.complex64)
    centre = rng.uniform(-90, 90, n)
    fdf[:n // 2] += (30 * np.exp(-0.5 * ((phi[None, :] - centre[:n // 2, None]) / 4.0) ** 2)
                     * np.exp(1j * rng.uniform(0, 2 * np.pi, (n // 2, 1)))).astype(np.complex64)
    fdf[10, 0] = fdf[11, -1] = 500.0
    fdf[12, 50] = np.nan
    fdf[13, 60] = np.inf
    index, offset, peak, real, imag = row_peaks(fdf)
    amplitude = np.abs(fdf.astype(np.complex128))
    finite = [r for r in range(n) if r not in (12, 13)]
    assert np.array_equal(index[finite], np.argmax(amplitude[finite], axis=1))
    ends = [r for r in finite if index[r] in (0, nphi - 1)]
    assert {10, 11} <= set(ends) and len(ends) < 0.05 * n
    assert np.all(offset[ends] == 0) and np.allclose(peak[ends], amplitude[ends, index[ends]], rtol=1e-6)
    inner = [r for r in finite if r not in ends]
    k = index[inner]
    rows = np.array(inner)
    vertex_phi, vertex_amp = calc_parabola_vertex(phi[k - 1], amplitude[rows, k - 1], phi[k], amplitude[rows, k],
                                                  phi[k + 1], amplitude[rows, k + 1])
    np.testing.assert_allclose(phi[k] + offset[inner], vertex_phi, rtol=0, atol=1e-6)
    np.testing.assert_allclose(peak[inner], vertex_amp, rtol=1e-6)
    # at a source's peak the complex value interpolated there has the vertex's modulus to second order
    sources = [r for r in inner if 20 <= r < n // 2]
    assert np.all(np.abs(np.hypot(real[sources], imag[sources]) - peak[sources]) < 0.01 * peak[sources])
    assert list(index[10:14]) == [0, nphi - 1, -1, -1]
    assert np.isnan([offset[12:14], peak[12:14], real[12:14], imag[12:14]]).all()


def test_a_synthesis_only_pass_loads_no_compiled_loops(tmp_path):
    # Without RM-CLEAN or moments nothing compiled runs, so numba (0.3 s to import, 0.2 s to load
    # its cache) is not imported.
    import subprocess
    import sys

    script = """
import sys, numpy as np
from spectropol.kernels.faraday import faraday_grid, faraday_depth_block, synthesis_matrix
freqs = np.linspace(1.0e9, 1.4e9, 16)
grid = faraday_grid(freqs)
q, u = (np.random.default_rng(1).standard_normal((16, 64)).astype(np.float32) for _ in range(2))
faraday_depth_block(q, u, grid, 0.1, clean_cutoff=None, matrix=synthesis_matrix(grid), shape=(8, 8))
print("numba" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_candidate_shards_and_the_memory_request_follow_the_depths():
    """Spectra gathered for a shard of the candidate store stay within CANDIDATE_SHARD_MB per array
    however many depths (4,096 rows of 20,119 depths would be 660 MB each), and the request of a
    faraday_depth job holds its synthesis matrix (659 MB at 4,096 channels x 20,119 depths)."""
    from spectropol.stages.faraday import candidate_shard_rows, faraday_depth_mem_mb

    assert [candidate_shard_rows(n) for n in (401, 1259, 5031, 20119)] == [4096, 3072, 768, 256]
    # the depths add 154 MB to two 8^2 tiles (and a quarter), 247 MB of gathered spectra, 659 + 34 MB of matrix
    without_depths = faraday_depth_mem_mb(4096, 1, 8, True, 2, 32, 512)
    assert faraday_depth_mem_mb(4096, 20119, 8, True, 2, 32, 512) - without_depths > 154 + 247 + 659
