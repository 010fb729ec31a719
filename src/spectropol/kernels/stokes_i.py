"""A Stokes I model per spectrum: a log-polynomial in frequency,

    I(nu) = I0 exp(sum_k c_k x^k),  x = ln(nu / nu0),  k = 1..order,

so that order 0 is a flat spectrum, order 1 a power law with spectral index c_1, and higher orders
curvature (c_1 is the spectral index at nu0 whatever the order). It is fitted in flux, not in log
flux, so that channels near or below zero count with their true weight (a log-space fit must drop
them and is biased high at low SNR); the order is the one of least corrected Akaike information
criterion (AICc), as RM-Tools chooses it with a negative polynomial order and rm-lite by default.
The model divides Q and U into fractional q and u (RM synthesis of q, u, sigma_add).
"""

from __future__ import annotations

import dataclasses

import numpy as np

GAUSS_NEWTON_STEPS = 30


@dataclasses.dataclass(frozen=True)
class StokesIModel:
    """The fitted model: coefficients (ln I0, c_1, ..., c_order), their covariance, the reference
    frequency, the order, the flux at nu0 and the spectral index at nu0 with errors, and whether
    the fit is good (finite, positive at every channel). ``valid`` False means no usable model."""

    order: int
    coefficients: np.ndarray
    covariance: np.ndarray
    reference_hz: float
    flux: float
    flux_err: float
    alpha: float
    alpha_err: float
    valid: bool
    aicc: float

    def __call__(self, freqs_hz: np.ndarray) -> np.ndarray:
        """The model at ``freqs_hz`` (NaN everywhere for an invalid model)."""
        if not self.valid:
            return np.full(np.shape(freqs_hz), np.nan)
        return np.exp(_design(np.log(np.asarray(freqs_hz, dtype=np.float64) / self.reference_hz), self.order)
                      @ self.coefficients)

    def flux_err_at(self, freqs_hz: np.ndarray) -> np.ndarray:
        """Standard error of the model at ``freqs_hz``, from the coefficients' covariance."""
        design = _design(np.log(np.asarray(freqs_hz, dtype=np.float64) / self.reference_hz), self.order)
        variance = np.einsum("ij,jk,ik->i", design, self.covariance, design)
        return self(freqs_hz) * np.sqrt(np.clip(variance, 0.0, None))


INVALID = dict(coefficients=np.full(1, np.nan), covariance=np.full((1, 1), np.nan), flux=float("nan"),
               flux_err=float("nan"), alpha=float("nan"), alpha_err=float("nan"), valid=False, aicc=float("inf"))


def _design(x: np.ndarray, order: int) -> np.ndarray:
    return np.vander(x, order + 1, increasing=True)


def _fit_order(x: np.ndarray, flux: np.ndarray, sigma: np.ndarray, order: int, start: np.ndarray):
    """Gauss-Newton for I = exp(design @ c) in flux space: (coefficients, covariance, chi^2), or
    None where it does not converge to a finite solution."""
    design = _design(x, order)
    c = np.zeros(order + 1)
    c[:min(order + 1, len(start))] = start[:order + 1]
    weight = 1.0 / sigma**2
    for _ in range(GAUSS_NEWTON_STEPS):
        model = np.exp(np.clip(design @ c, -700, 700))
        jacobian = model[:, None] * design
        normal = jacobian.T @ (weight[:, None] * jacobian)
        try:
            step = np.linalg.solve(normal, jacobian.T @ (weight * (flux - model)))
        except np.linalg.LinAlgError:
            return None
        # a damped step where the full one overshoots (ln I0 moving by more than 1)
        c = c + step / max(1.0, np.abs(step).max())
        if np.abs(step).max() < 1e-10:
            break
    model = np.exp(np.clip(design @ c, -700, 700))
    jacobian = model[:, None] * design
    try:
        covariance = np.linalg.inv(jacobian.T @ (weight[:, None] * jacobian))
    except np.linalg.LinAlgError:
        return None
    chi2 = float(np.sum(weight * (flux - model) ** 2))
    if not (np.all(np.isfinite(c)) and np.isfinite(chi2)):
        return None
    return c, covariance, chi2


def fit_stokes_i(freqs_hz: np.ndarray, flux: np.ndarray, sigma: np.ndarray, reference_hz: float,
                 max_order: int = 2) -> StokesIModel:
    """The log-polynomial of order 0..``max_order`` (fewer where the channels cannot constrain it)
    with the least AICc = chi^2 + 2k + 2k(k+1)/(n-k-1) for k coefficients and n channels.
    The start is a weighted fit of ln I on the channels with I > 2 sigma (the weighted mean flux
    where fewer than three are); no model where that mean is not positive."""
    freqs_hz, flux, sigma = (np.asarray(a, dtype=np.float64) for a in (freqs_hz, flux, sigma))
    good = np.isfinite(flux) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(freqs_hz)
    x, flux, sigma = np.log(freqs_hz[good] / reference_hz), flux[good], sigma[good]
    n = int(good.sum())
    bright = flux > 2.0 * sigma
    mean = np.sum(flux / sigma**2) / np.sum(1.0 / sigma**2) if n else 0.0
    if n < 2 or mean <= 0:
        return StokesIModel(order=0, reference_hz=reference_hz, **INVALID)
    start = np.array([np.log(mean), 0.0])
    if bright.sum() >= 3:
        w = (flux[bright] / sigma[bright]) ** 2
        design = _design(x[bright], 1)
        start = np.linalg.lstsq(design * np.sqrt(w)[:, None], np.log(flux[bright]) * np.sqrt(w), rcond=None)[0]
    fits = {}
    for order in range(0, max_order + 1):
        k = order + 1
        if n - k - 1 < 1:
            break
        fitted = _fit_order(x, flux, sigma, order, start)
        if fitted is not None:
            c, covariance, chi2 = fitted
            fits[order] = (c, covariance, chi2 + 2 * k + 2.0 * k * (k + 1) / (n - k - 1))
    if not fits:
        return StokesIModel(order=0, reference_hz=reference_hz, **INVALID)
    order = min(fits, key=lambda o: fits[o][2])
    c, covariance, aicc = fits[order]
    flux0 = float(np.exp(c[0]))
    model = np.exp(_design(x, order) @ c)
    # the spectral index at nu0 is c_1 of the chosen model; where a flat spectrum is chosen, the
    # power law's (what a catalogue user asks for: an index with its error, near zero)
    sloped = order if order >= 1 else (1 if 1 in fits else None)
    alpha, alpha_err = ((float(fits[sloped][0][1]), float(np.sqrt(fits[sloped][1][1, 1]))) if sloped is not None
                        else (float("nan"), float("nan")))
    return StokesIModel(order=order, coefficients=c, covariance=covariance, reference_hz=reference_hz,
                        flux=flux0, flux_err=float(flux0 * np.sqrt(covariance[0, 0])), alpha=alpha,
                        alpha_err=alpha_err, valid=bool(np.all(np.isfinite(model)) and np.all(model > 0)),
                        aicc=float(aicc))


def fit_stokes_i_pixels(freqs_hz: np.ndarray, flux: np.ndarray, sigma: np.ndarray, reference_hz: float,
                        max_order: int = 2) -> dict[str, np.ndarray]:
    """fit_stokes_i for many spectra at once (flux (nfreq, npix), one sigma per channel), as the
    one pass fits every bright pixel: the same log-polynomials in flux, by Gauss-Newton on all
    pixels together, the order of least AICc per pixel. Returns per pixel ``flux`` (I at nu0),
    ``alpha`` (c_1; the power law's where a flat spectrum wins) and ``order`` (-1: no model, where
    the weighted mean flux is not positive or no order converges to a model positive everywhere)
    and ``coefficients`` (npix, max_order + 1; ln I0, c_1, ..., zeros beyond the order). Channels
    blank (NaN) in a pixel or without a finite sigma are left out of its fit."""
    freqs_hz, flux, sigma = (np.asarray(a, dtype=np.float64) for a in (freqs_hz, flux, sigma))
    npix = flux.shape[1]
    out = {"flux": np.full(npix, np.nan), "alpha": np.full(npix, np.nan), "order": np.full(npix, -1, np.int8),
           "coefficients": np.full((npix, max_order + 1), np.nan)}
    if npix == 0:
        return out
    x = np.log(freqs_hz / reference_hz)
    weight = np.where(np.isfinite(flux) & (np.isfinite(sigma) & (sigma > 0))[:, None],
                      1.0 / np.where(sigma > 0, sigma, 1.0)[:, None] ** 2, 0.0)  # (nfreq, npix)
    flux = np.where(weight > 0, flux, 0.0)
    n = (weight > 0).sum(axis=0)
    mean = (weight * flux).sum(axis=0) / np.maximum(weight.sum(axis=0), 1e-300)
    usable = (mean > 0) & (n >= 2)
    best_aicc = np.full(npix, np.inf)
    slope = np.full(npix, np.nan)
    for order in range(0, max_order + 1):
        k = order + 1
        fits = usable & (n - k - 1 >= 1)
        if not fits.any():
            break
        design = _design(x, order)  # (nfreq, k)
        c = np.zeros((npix, k))
        c[:, 0] = np.log(np.where(fits, mean, 1.0))
        active = fits.copy()
        for _ in range(GAUSS_NEWTON_STEPS):
            model = np.exp(np.clip(c @ design.T, -700, 700)).T  # (nfreq, npix)
            jacobian = model[:, :, None] * design[:, None, :]  # (nfreq, npix, k)
            normal = np.einsum("fpi,fp,fpj->pij", jacobian, weight, jacobian)
            rhs = np.einsum("fpi,fp->pi", jacobian, weight * (flux - model))
            step = np.zeros((npix, k))
            solvable = active & (np.abs(np.linalg.det(normal)) > 0)
            if solvable.any():
                step[solvable] = np.linalg.solve(normal[solvable], rhs[solvable][:, :, None])[:, :, 0]
            largest = np.abs(step).max(axis=1)
            c += step / np.maximum(1.0, largest)[:, None]
            active &= largest >= 1e-10
            if not active.any():
                break
        model = np.exp(np.clip(c @ design.T, -700, 700)).T
        chi2 = (weight * (flux - model) ** 2).sum(axis=0)
        good = fits & np.isfinite(c).all(axis=1) & np.isfinite(chi2) & (model > 0).all(axis=0) \
            & np.isfinite(model).all(axis=0)
        aicc = np.where(good, chi2 + 2 * k + 2.0 * k * (k + 1) / np.maximum(n - k - 1, 1), np.inf)
        better = aicc < best_aicc
        best_aicc = np.where(better, aicc, best_aicc)
        out["flux"] = np.where(better, np.exp(c[:, 0]), out["flux"])
        out["order"] = np.where(better, order, out["order"]).astype(np.int8)
        out["coefficients"][better] = np.pad(c[better], ((0, 0), (0, max_order + 1 - k)))
        if order >= 1:
            out["alpha"] = np.where(better, c[:, 1], out["alpha"])
            if order == 1:
                slope = np.where(good, c[:, 1], np.nan)
    flat = out["order"] == 0
    out["alpha"] = np.where(flat, slope, out["alpha"])  # a flat spectrum's index: the power law's, as fit_stokes_i
    return out


def synthesis_band_mean(weights: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """The mean of each column of ``shapes`` (nfreq, n) over the channels with the RM-synthesis
    ``weights``: what the FDF peak of a source whose P follows that shape is, relative to P at nu0
    (the shapes 1 there). Channels of weight 0 are left out, blank as they may be."""
    used = weights > 0
    return weights[used] @ shapes[used] / weights[used].sum()


def band_shape(coefficients: np.ndarray, freqs_hz: np.ndarray, reference_hz: float) -> np.ndarray:
    """The models of ``coefficients`` (npix, order + 1) over the band, 1 at nu0: (nfreq, npix)."""
    design = _design(np.log(np.asarray(freqs_hz, dtype=np.float64) / reference_hz), coefficients.shape[1] - 1)
    return np.exp(design[:, 1:] @ coefficients[:, 1:].T)
