"""Faraday depth: RM synthesis (Brentjens & de Bruyn 2005, A&A 441, 1217), RM-CLEAN (Heald et al.
2009, A&A 503, 409) and the peak of the Faraday dispersion function (FDF), on 1-D spectra and on
(channel, pixel) blocks of a cube.

Conventions follow RM-Tools (Purcell et al. 2020), so that numbers can be compared:

    F(phi) = K sum_i w_i P_i exp(-2 i phi (lambda_i^2 - lambda0^2)),  K = 1 / sum_i w_i
    lambda0^2 = sum w_i lambda_i^2 / sum w_i
    RMSF FWHM = 3.8 / (lambda_max^2 - lambda_min^2)            (Dickey et al. 2019)
    phi_max = max(sqrt(3) / max(delta lambda^2), 10 FWHM),  d phi = FWHM / oversample

The block functions work on arrays shaped (nchan, npix) so a whole spatial tile is one complex
matrix product (F = A P), the fastest route on CPUs; NaN channels of a pixel are left out of that
pixel's sum and normalisation.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from ..constants import SPEED_OF_LIGHT

FWHM_PER_LAMBDA2_RANGE = 3.8  # RMSF FWHM x lambda^2 range (Dickey et al. 2019; RM-Tools)
BIAS_FACTOR = 2.3  # polarisation bias correction sqrt(P^2 - 2.3 sigma^2) (George et al. 2012)
# refine_peak keeps RM-CLEAN's components within this many RMSF FWHM of a peak as the peak's own:
# on a grid of FWHM/2, CLEAN spreads a thin source's components over about +-1.5 FWHM.
PEEL_FWHM = 2.0
RAYLEIGH_MEDIAN = float(np.sqrt(2.0 * np.log(2.0)))  # median of |F| over sigma per part, for Gaussian noise
REFINE_BATCH = 256  # columns refined together in fdf_peak: memory about 80 bytes x channels x this


def lambda_squared(freqs_hz: np.ndarray) -> np.ndarray:
    """Wavelength squared (m^2) at each frequency (Hz)."""
    return (SPEED_OF_LIGHT / np.asarray(freqs_hz, dtype=np.float64)) ** 2


@dataclasses.dataclass(frozen=True)
class FaradayGrid:
    """The Faraday-depth sampling and what the band implies about it (rad/m^2)."""

    phi: np.ndarray
    lambda2: np.ndarray
    weights: np.ndarray
    lambda0_sq: float
    fwhm: float
    max_scale: float
    phi_max_channel: float

    @property
    def dphi(self) -> float:
        return float(self.phi[1] - self.phi[0]) if len(self.phi) > 1 else 0.0

    def describe(self) -> dict:
        return {"phi_min": float(self.phi[0]), "phi_max": float(self.phi[-1]), "dphi": self.dphi, "nphi": len(self.phi),
                "rmsf_fwhm": self.fwhm, "max_scale": self.max_scale, "phi_max_channel": self.phi_max_channel,
                "lambda0_sq": self.lambda0_sq}


def faraday_grid(freqs_hz: np.ndarray, weights: np.ndarray | None = None, *, dphi: float | None = None,
                 phi_max: float | None = None, oversample: float = 10.0) -> FaradayGrid:
    """The Faraday-depth grid for a band: symmetric about 0, step FWHM/oversample (or ``dphi``),
    reaching phi_max = max(sqrt(3)/max channel lambda^2 width, 10 FWHM) (or ``phi_max``)."""
    lambda2 = lambda_squared(freqs_hz)
    weights = np.ones_like(lambda2) if weights is None else np.asarray(weights, dtype=np.float64)
    usable = weights > 0
    if usable.sum() < 2:
        raise ValueError("RM synthesis needs at least two channels with data")
    l2 = lambda2[usable]
    span = l2.max() - l2.min()
    fwhm = FWHM_PER_LAMBDA2_RANGE / span
    widths = np.abs(np.diff(np.sort(lambda2)))
    phi_max_channel = float(np.sqrt(3.0) / widths.max()) if len(widths) else np.inf
    dphi = fwhm / oversample if dphi is None else float(dphi)
    if phi_max is None:
        phi_max = max(phi_max_channel, 10.0 * fwhm)
    nphi = int(round(abs(phi_max) / dphi)) * 2 + 1
    phi = (np.arange(nphi) - (nphi - 1) / 2) * dphi
    return FaradayGrid(
        phi=phi, lambda2=lambda2, weights=weights, lambda0_sq=float((weights * lambda2).sum() / weights.sum()),
        fwhm=float(fwhm), max_scale=float(np.pi / l2.min()), phi_max_channel=phi_max_channel,
    )


def synthesis_matrix(grid: FaradayGrid, phi: np.ndarray | None = None, dtype=np.complex64) -> np.ndarray:
    """A (nphi, nchan) = w_i exp(-2i phi (lambda_i^2 - lambda0^2)), unnormalised."""
    phi = grid.phi if phi is None else phi
    # The phase is computed in double precision: phi * lambda^2 reaches thousands of radians.
    phase = -2.0 * np.outer(phi, grid.lambda2 - grid.lambda0_sq)
    return (grid.weights[None, :] * np.exp(1j * phase)).astype(dtype)


def rmsf(grid: FaradayGrid, phi: np.ndarray | None = None) -> np.ndarray:
    """The rotation measure spread function on ``phi`` (default the grid), complex128, peak 1."""
    return synthesis_matrix(grid, phi, np.complex128).sum(axis=1) / grid.weights.sum()


def doubled_phi(grid: FaradayGrid) -> np.ndarray:
    """Twice the grid's range at the same step, the RMSF support RM-CLEAN needs."""
    n = len(grid.phi)
    return (np.arange(2 * n - 1) - (n - 1)) * grid.dphi


def rm_synthesis_block(q: np.ndarray, u: np.ndarray, grid: FaradayGrid, matrix: np.ndarray | None = None) -> np.ndarray:
    """FDF (nphi, npix) complex64 of Q, U blocks (nchan, npix); NaN channels skipped per pixel.

    The per-pixel normalisation 1 / sum(w) is applied to the (small) input rather than the
    (large) output, so the matrix product is the only pass over the FDF.
    """
    matrix = synthesis_matrix(grid) if matrix is None else matrix
    p = np.empty(q.shape, dtype=np.complex64)
    p.real = q
    p.imag = u
    finite = np.isfinite(p)
    if finite.all():
        p *= np.float32(1.0 / grid.weights.sum())
    else:
        p[~finite] = 0
        norm = grid.weights.astype(np.float32) @ finite.astype(np.float32)  # sum of weights per pixel
        with np.errstate(divide="ignore"):
            p *= np.where(norm > 0, 1.0 / norm, np.nan).astype(np.float32)
    return matrix @ p


def fdf_noise_theoretical(grid: FaradayGrid, channel_sigma: np.ndarray) -> float:
    """Noise of the real or imaginary part of the FDF: sqrt(sum w^2 sigma^2) / sum w."""
    w = grid.weights
    return float(np.sqrt(np.nansum(w**2 * np.asarray(channel_sigma) ** 2)) / w.sum())


def rm_clean_block(fdf: np.ndarray, grid: FaradayGrid, cutoff: np.ndarray | float, *, gain: float = 0.1,
                   max_iter: int = 1000, rmsf_doubled: np.ndarray | None = None, mask: float | None = None,
                   want_residual: bool = True) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """RM-CLEAN of a block of FDFs (nphi, npix), all pixels at once (Heald et al. 2009).

    Each iteration takes, for every pixel still above its ``cutoff`` (|F|, scalar or per pixel),
    the peak of the residual, stores gain x peak as a component at that depth and subtracts the
    RMSF shifted there. Returns (clean FDF, residual or None, components), each (nphi, npix)
    complex64; the clean FDF is the components convolved with a Gaussian of the RMSF FWHM plus
    the residual. Pixels that start below the cutoff (most of a survey cube) cost one pass.

    ``mask`` (|F|): only pixels whose dirty peak reaches it are cleaned (down to ``cutoff``), as an
    imager cleans inside a mask: a noise pixel's highest of hundreds of independent depths is above
    3 sigma more often than not, and cleaning it finds nothing but noise. The others keep their
    dirty FDF, with no components.
    """
    nphi, npix = fdf.shape
    if rmsf_doubled is None:
        rmsf_doubled = rmsf(grid, doubled_phi(grid))
    rmsf_doubled = rmsf_doubled.astype(np.complex64)
    fdf = np.asarray(fdf, dtype=np.complex64)
    cutoff = np.broadcast_to(np.asarray(cutoff, dtype=np.float32), (npix,))
    amplitude = np.abs(fdf)
    with np.errstate(invalid="ignore"):
        # a spectrum that is zero everywhere (noise-free data without polarisation) has nothing to clean
        highest = amplitude.max(axis=0)
        start = np.isfinite(amplitude).all(axis=0) & (highest >= cutoff) & (highest > 0)
        if mask is not None:
            start &= highest >= mask
    columns = np.nonzero(start)[0]
    residual = np.ascontiguousarray(fdf[:, columns].T)  # (n, nphi): one contiguous spectrum per row
    found = np.zeros(residual.shape, dtype=np.complex64)
    live = np.arange(len(columns))
    offsets = np.arange(nphi)
    for _ in range(max_iter):
        if live.size == 0:
            break
        block = residual[live]
        peak_index = np.argmax(np.abs(block), axis=1)
        peak = block[np.arange(live.size), peak_index]
        still = (np.abs(peak) >= cutoff[columns[live]]) & (np.abs(peak) > 0)
        if not still.any():
            break
        live, peak_index, peak = live[still], peak_index[still], peak[still]
        component = gain * peak
        found[live, peak_index] += component
        # RMSF centred on each peak: doubled-range index (nphi - 1) - k + j for grid index j.
        shifted = rmsf_doubled[(nphi - 1 - peak_index)[:, None] + offsets[None, :]]
        residual[live] -= component[:, None] * shifted
    components = np.zeros((nphi, npix), dtype=np.complex64)
    components[:, columns] = found.T
    clean = fdf.copy()
    clean[:, columns] = (restore_components(found, grid, axis=1) + residual).T
    if want_residual:
        full_residual = fdf.copy()
        full_residual[:, columns] = residual.T
        return clean, full_residual, components
    return clean, None, components


def restoring_matrix(grid: FaradayGrid) -> np.ndarray:
    """G (nphi, nphi) float32 with G[j, i] the restoring Gaussian (FWHM of the RMSF, peak 1) at
    phi_i for a component at phi_j: restoring spectra is then one matrix product."""
    return _restoring_matrix(len(grid.phi), float(grid.dphi), float(grid.fwhm))


@functools.lru_cache(maxsize=2)
def _restoring_matrix(nphi: int, dphi: float, fwhm: float) -> np.ndarray:
    # The grid is uniform, so G depends on these three numbers alone; kept, because every tile of a
    # cube restores with the same one (64 MB and 55 ms at 4,096 depths).
    offsets = (np.arange(nphi)[None, :] - np.arange(nphi)[:, None]) * dphi
    matrix = np.exp(-4.0 * np.log(2.0) * (offsets / fwhm) ** 2).astype(np.float32)
    matrix.flags.writeable = False
    return matrix


def restore_components(components: np.ndarray, grid: FaradayGrid, axis: int = 0) -> np.ndarray:
    """Clean components convolved with a Gaussian of the RMSF FWHM (peak 1) along ``axis``.
    Only spectra that have components are restored: in a survey cube most pixels have none."""
    spectra = np.moveaxis(components, axis, -1)
    nphi = spectra.shape[-1]
    flat_in = spectra.reshape(-1, nphi)
    restored = np.zeros(flat_in.shape, dtype=np.complex64)
    rows = np.nonzero(flat_in.any(axis=1))[0]
    if rows.size:
        chosen = flat_in[rows]
        if nphi <= 4096:  # G fits in 64 MB: BLAS beats a long direct convolution by far
            g = restoring_matrix(grid)
            restored[rows] = (chosen.real @ g) + 1j * (chosen.imag @ g)
        else:
            from scipy.ndimage import convolve1d

            half = int(np.ceil(4 * grid.fwhm / grid.dphi))
            kernel = np.exp(-4.0 * np.log(2.0) * ((np.arange(-half, half + 1) * grid.dphi) / grid.fwhm) ** 2)
            restored[rows] = (convolve1d(chosen.real, kernel, axis=-1, mode="constant")
                              + 1j * convolve1d(chosen.imag, kernel, axis=-1, mode="constant"))
    return np.moveaxis(restored.reshape(spectra.shape), -1, axis)


def parabolic_peak(values: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional offset (-0.5..0.5) and height of the parabola through values[index-1..index+1]
    along axis 0, per column; offset 0 at the ends of the axis."""
    n = values.shape[0]
    cols = np.arange(values.shape[1])
    inner = (index > 0) & (index < n - 1)
    left = values[np.clip(index - 1, 0, n - 1), cols]
    mid = values[index, cols]
    right = values[np.clip(index + 1, 0, n - 1), cols]
    denominator = left - 2 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(inner & (denominator != 0), 0.5 * (left - right) / denominator, 0.0)
    return offset, mid - 0.25 * (left - right) * offset


def refine_peak(channel_p: np.ndarray, grid: FaradayGrid, phi_start: np.ndarray, components: np.ndarray | None = None,
                *, levels: int = 3, samples: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Faraday depth of the FDF's peak near ``phi_start`` per pixel, and the FDF there, found by
    evaluating the FDF directly from the channel data rather than interpolating the grid.

    channel_p: Q + iU, (nchan, npix), NaN where a channel has no data; phi_start (npix,) a coarse
    maximum (within a grid step of the peak). Each of ``levels`` zooms evaluates F exactly at
    ``samples`` depths spanning +-1 step about the current estimate and takes the parabola through
    the best three, the step shrinking by (samples - 1) / 2 each time: with the defaults the last
    samples are dphi / 64 apart, where the main lobe is a parabola to far better than the noise, so
    the depth is unbiased for grid steps up to FWHM / 2 (a parabola through the grid's own samples
    at FWHM / 3 is off by up to 0.006 FWHM, 6 times the depth error at SNR 500). Evaluating F is one (samples x nchan) x
    (nchan x npix) product per level, so every pixel of a tile can afford it.

    With ``components`` (RM-CLEAN's, (nphi, npix)) the FDF searched is that of the data less the
    components farther than PEEL_FWHM RMSF widths from ``phi_start``: the peak's own emission without the
    sidelobes of other depths, where the clean FDF itself, built of components on the grid, would
    put the peak where the grid does.
    """
    lam = (grid.lambda2 - grid.lambda0_sq)[:, None]  # (nchan, 1)
    finite = np.isfinite(channel_p)
    data = np.where(finite, channel_p, 0).astype(np.complex128)
    if components is not None:
        far = np.abs(grid.phi[:, None] - phi_start[None, :]) > PEEL_FWHM * grid.fwhm
        others = np.where(far, components, 0)
        peeled = np.nonzero(others.any(axis=0))[0]
        if peeled.size:
            # A component c at phi_k is the channel data c exp(2i phi_k (lambda^2 - lambda0^2)).
            unit = np.exp(2j * lam * grid.phi[None, :])  # (nchan, nphi)
            data[:, peeled] -= np.where(finite[:, peeled], unit @ others[:, peeled].astype(np.complex128), 0)
    weighted = data * grid.weights[:, None]
    norm = grid.weights @ finite
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm > 0, 1.0 / norm, np.nan)
    phi = np.asarray(phi_start, dtype=np.float64).copy()
    step = grid.dphi if grid.dphi > 0 else grid.fwhm / 10.0
    for _ in range(levels):
        offsets = np.linspace(-step, step, samples)
        centred = weighted * np.exp(-2j * lam * phi[None, :])  # (nchan, npix)
        amplitude = np.abs(np.exp(-2j * offsets[:, None] * lam.T) @ centred)  # (samples, npix)
        best = np.clip(np.argmax(amplitude, axis=0), 1, samples - 2)
        shift, _ = parabolic_peak(amplitude, best)
        step = offsets[1] - offsets[0]
        phi = phi + offsets[best] + shift * step
        phi = np.where(np.isfinite(phi), phi, phi_start)
    value = (weighted * np.exp(-2j * lam * phi[None, :])).sum(axis=0) * scale
    return phi, value


def fdf_peak(fdf: np.ndarray, grid: FaradayGrid, sigma: np.ndarray | float, channel_p: np.ndarray | None = None,
             components: np.ndarray | None = None, refine_snr: float = 0.0) -> dict[str, np.ndarray]:
    """Peak of |F| per column of (nphi, npix): Faraday depth, amplitude and its bias correction,
    errors, the polarisation angle at the peak and derotated to lambda^2 = 0.

    The peak is the grid's maximum refined by a parabola through its neighbours, or, given the
    channel data ``channel_p`` (Q + iU, (nchan, npix)), refined by evaluating the FDF exactly
    (refine_peak, with RM-CLEAN's ``components`` peeled): accurate on coarse grids. Only columns
    whose grid peak reaches ``refine_snr`` are refined: noise pixels keep the parabola, which is
    as good as their noise, for none of the cost.

    Errors as in Brentjens & de Bruyn 2005 (appendix A) and RM-Tools: sigma_phi = FWHM/(2 SNR),
    sigma_chi = sigma/(2 P) rad; the derotated angle's error adds the lambda0^2 lever arm.
    """
    amplitude = np.abs(fdf)
    valid = np.isfinite(amplitude).all(axis=0)
    if not valid.all():
        amplitude[:, ~valid] = 0.0
    index = np.argmax(amplitude, axis=0)
    offset, peak = parabolic_peak(amplitude, index)
    phi_peak = grid.phi[index] + offset * grid.dphi
    # Real and imaginary parts interpolated at the same fractional position.
    real = _interpolate_at(fdf.real, index, offset)
    imag = _interpolate_at(fdf.imag, index, offset)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), peak.shape)
    if channel_p is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            chosen = np.nonzero(valid & (peak >= refine_snr * sigma))[0] if refine_snr > 0 else np.nonzero(valid)[0]
        if chosen.size:
            phi_peak, peak, real, imag = (np.array(a, dtype=np.float64) for a in (phi_peak, peak, real, imag))
            # a batch of columns at a time: refine_peak holds about 80 bytes per channel per column
            for start in range(0, chosen.size, REFINE_BATCH):
                cols = chosen[start:start + REFINE_BATCH]
                phi_peak[cols], value = refine_peak(channel_p[:, cols], grid, phi_peak[cols],
                                                    None if components is None else components[:, cols])
                peak[cols], real[cols], imag[cols] = np.abs(value), value.real, value.imag
    snr = peak / sigma
    angle = 0.5 * np.arctan2(imag, real)
    angle0 = angle - phi_peak * grid.lambda0_sq
    nchan = int((grid.weights > 0).sum())
    var_l2 = float(np.var(grid.lambda2[grid.weights > 0]))
    with np.errstate(divide="ignore", invalid="ignore"):
        angle_err = 0.5 / snr
        angle0_err = np.sqrt(sigma**2 * nchan / (4.0 * (nchan - 2.0) * peak**2)
                             * ((nchan - 1.0) / nchan + grid.lambda0_sq**2 / var_l2))
        debiased = np.sqrt(np.clip(peak**2 - BIAS_FACTOR * sigma**2, 0.0, None))
    out = {
        "peak_pi": peak, "peak_pi_debiased": debiased, "peak_phi": phi_peak, "peak_phi_err": grid.fwhm / (2.0 * snr),
        "snr": snr, "pol_angle_deg": np.rad2deg(angle) % 180.0, "pol_angle_err_deg": np.rad2deg(angle_err),
        "pol_angle0_deg": np.rad2deg(angle0) % 180.0, "pol_angle0_err_deg": np.rad2deg(angle0_err),
        "fdf_noise": sigma.copy(), "peak_at_edge": (index == 0) | (index == len(grid.phi) - 1),
    }
    for key, value in out.items():
        if value.dtype.kind == "f":
            out[key] = np.where(valid, value, np.nan)
    return out


def _interpolate_at(values: np.ndarray, index: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Value of the parabola through values[index-1..index+1] at a fractional offset."""
    n = values.shape[0]
    cols = np.arange(values.shape[1])
    left = values[np.clip(index - 1, 0, n - 1), cols]
    mid = values[index, cols]
    right = values[np.clip(index + 1, 0, n - 1), cols]
    return mid + 0.5 * offset * (right - left) + 0.5 * offset**2 * (left - 2 * mid + right)


def robust_fdf_noise(fdf: np.ndarray, stride: int = 1) -> np.ndarray:
    """Noise (per real and imaginary part) of each column of an FDF (nphi, npix) from the median of
    |F| at every ``stride``-th depth: |F| of complex Gaussian noise is Rayleigh distributed, with
    median sigma sqrt(2 ln 2). Robust as a MAD is to the few depths a source or its sidelobes hold,
    a seventh of its cost (one median of |F| instead of two of the real and imaginary parts), and
    meaningful on an RM-CLEAN residual, where sources and their sidelobes are gone. NaN ignored."""
    amplitude = np.abs(fdf[::stride])
    median_of = np.median if np.isfinite(amplitude).all() else np.nanmedian
    return median_of(amplitude, axis=0) / RAYLEIGH_MEDIAN


def noise_stride(grid: FaradayGrid) -> int:
    """Depths closer than half the RMSF FWHM carry nearly the same noise: one in this many is enough
    for a robust rms (on the default grid, 10 depths per FWHM, 1 in 5: the median is the costliest
    step of a tile's peak maps, 0.09 of 0.14 s at 1,259 depths)."""
    return max(1, int(grid.fwhm / (2 * grid.dphi)))


def components_second_moment(components: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Spread in depth (rad/m^2) of each column's clean components (nphi, npix), weighted by their
    amplitude, about their mean depth: a Faraday-complexity indicator (NaN without components).
    Only columns with components are computed: after a masked RM-CLEAN, few have any."""
    moment = np.full(components.shape[1], np.nan)
    columns = np.nonzero(components.any(axis=0))[0]
    if columns.size:
        weight = np.abs(components[:, columns]).astype(np.float64)
        total = weight.sum(axis=0)
        mean = (weight * phi[:, None]).sum(axis=0) / total
        moment[columns] = np.sqrt((weight * (phi[:, None] - mean) ** 2).sum(axis=0) / total)
    return moment


def peak_maps(fdf: np.ndarray, grid: FaradayGrid, components: np.ndarray | None, sigma_theory: float,
              channel_p: np.ndarray | None = None, *, residual: np.ndarray | None = None,
              refine_snr: float = 0.0) -> dict:
    """fdf_peak of each column of a (clean) FDF (nphi, npix) and the components' second moment.
    With ``components`` the noise is the robust rms of the residual (given, or the clean FDF minus
    the restored components), else ``sigma_theory``; with ``channel_p`` the peaks reaching
    ``refine_snr`` are refined exactly."""
    if components is not None:
        sigma = robust_fdf_noise(fdf - restore_components(components, grid) if residual is None else residual,
                                 noise_stride(grid))
    else:
        sigma = np.full(fdf.shape[1], sigma_theory)
    peaks = fdf_peak(fdf, grid, sigma, channel_p, components, refine_snr)
    if components is not None:
        peaks["cc_moment2"] = components_second_moment(components, grid.phi)
    else:
        peaks["cc_moment2"] = np.full(fdf.shape[1], np.nan)
    return peaks


@dataclasses.dataclass
class FaradayBlock:
    """One spatial block through the whole Faraday-depth analysis (faraday_depth_block)."""

    peaks: dict                      # peak_maps of the block, each (npix,)
    candidates: np.ndarray           # columns whose peak SNR reaches the candidate level
    dirty: np.ndarray                # (nphi, npix) complex64
    clean: np.ndarray | None         # (nphi, npix) complex64, None without RM-CLEAN
    components: np.ndarray | None    # (nphi, npix) complex64, None without RM-CLEAN


def faraday_depth_block(q: np.ndarray, u: np.ndarray, grid: FaradayGrid, sigma_theory: float, *,
                        clean_cutoff: float | None, clean_gain: float = 0.1, clean_max_iter: int = 1000,
                        clean_mask: float | None = None, candidate_snr: float = 5.0, matrix: np.ndarray | None = None,
                        rmsf_doubled: np.ndarray | None = None) -> FaradayBlock:
    """RM synthesis, RM-CLEAN (when ``clean_cutoff`` is given, |F| in Jy/beam; of the pixels whose
    dirty peak reaches ``clean_mask``, if given) and the peak maps of
    Q, U blocks (nchan, npix), in memory: the FDF of a block never has to be stored to be searched.
    Peaks reaching ``candidate_snr`` are refined exactly from Q and U (refine_peak); those columns
    are the block's candidates, whose spectra a survey keeps."""
    dirty = rm_synthesis_block(q, u, grid, matrix)
    clean = residual = components = None
    if clean_cutoff is not None:
        clean, residual, components = rm_clean_block(dirty, grid, clean_cutoff, gain=clean_gain,
                                                     max_iter=clean_max_iter, rmsf_doubled=rmsf_doubled,
                                                     mask=clean_mask)
    channel_p = np.empty(q.shape, dtype=np.complex64)
    channel_p.real = q
    channel_p.imag = u
    peaks = peak_maps(dirty if clean is None else clean, grid, components, sigma_theory, channel_p,
                      residual=residual, refine_snr=candidate_snr)
    with np.errstate(invalid="ignore"):
        candidates = np.nonzero(peaks["snr"] >= candidate_snr)[0]
    return FaradayBlock(peaks=peaks, candidates=candidates, dirty=dirty, clean=clean, components=components)
