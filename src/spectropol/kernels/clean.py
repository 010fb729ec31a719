"""Deconvolution of one channel's Stokes images: Cotton-Schwab major cycles around Hogbom minor
cycles, with Stokes Q and U cleaned jointly on the peak of |Q + iU| (Pratley & Johnston-Hollitt
2016) so that polarised flux is found once and not biased by cleaning Q and U apart.

Images are array[y, x]; the PSF used by the minor cycles is twice the image size, so that a
component anywhere in the image can be subtracted everywhere. Visibility-domain work (prediction
of the model and the residual images) is done by the caller's ``predict`` and ``image`` callables
so that this module stays free of gridding details.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..errors import fail
from ..options import CleanOptions
from .beam import gaussian_beam_image
from .statistics import mad_rms

log = logging.getLogger(__name__)


def _apply_components(residual: np.ndarray, psf2: np.ndarray, components: np.ndarray) -> None:
    """residual -= components convolved with the PSF (exactly, by FFT); psf2 is (2ny, 2nx) with its
    peak at (ny, nx)."""
    from scipy.signal import fftconvolve

    ny, nx = residual.shape
    residual -= fftconvolve(components, psf2, mode="full")[ny : 2 * ny, nx : 2 * nx].astype(residual.dtype)


def _active_pixels(search: np.ndarray, threshold: float, mask: np.ndarray | None):
    """Pixels that can be picked in this minor cycle: at or above the threshold (and in the mask).
    Iterating on these alone (Clark 1980's idea) makes an iteration cost the active count, not the
    image size; the exact residual is rebuilt by FFT when the minor cycle ends."""
    eligible = search >= threshold
    if mask is not None:
        eligible &= mask
    return np.nonzero(eligible)


def hogbom(residual: np.ndarray, psf2: np.ndarray, model: np.ndarray, *, gain: float, threshold: float,
           niter: int, mask: np.ndarray | None = None) -> int:
    """Hogbom CLEAN of one real image in place: returns the iterations done. The residual is
    exact on return (all components subtracted with the full PSF)."""
    ny, nx = residual.shape
    ys, xs = _active_pixels(np.abs(residual), threshold, mask)
    values = residual[ys, xs].astype(np.float64)
    found = np.zeros_like(residual)
    done = niter
    for iteration in range(niter):
        if values.size == 0:
            done = iteration
            break
        k = int(np.argmax(np.abs(values)))
        if abs(values[k]) < threshold:
            done = iteration
            break
        amount = gain * values[k]
        found[ys[k], xs[k]] += amount
        values -= amount * psf2[ny + ys - ys[k], nx + xs - xs[k]]
    if np.any(found):
        model += found
        _apply_components(residual, psf2, found)
    return done


def hogbom_polarised(q: np.ndarray, u: np.ndarray, psf2: np.ndarray, model_q: np.ndarray, model_u: np.ndarray, *,
                     gain: float, threshold: float, niter: int, mask: np.ndarray | None = None) -> int:
    """Joint Hogbom CLEAN of Q and U in place on the peak of P = |Q + iU|; each component takes
    gain x (Q, U) at that pixel from both, so the polarisation angle is kept."""
    ny, nx = q.shape
    ys, xs = _active_pixels(np.hypot(q, u), threshold, mask)
    vq, vu = q[ys, xs].astype(np.float64), u[ys, xs].astype(np.float64)
    found_q, found_u = np.zeros_like(q), np.zeros_like(u)
    done = niter
    for iteration in range(niter):
        if vq.size == 0:
            done = iteration
            break
        p = np.hypot(vq, vu)
        k = int(np.argmax(p))
        if p[k] < threshold:
            done = iteration
            break
        dq, du = gain * vq[k], gain * vu[k]
        found_q[ys[k], xs[k]] += dq
        found_u[ys[k], xs[k]] += du
        shifted = psf2[ny + ys - ys[k], nx + xs - xs[k]]
        vq -= dq * shifted
        vu -= du * shifted
    for found, model, image in ((found_q, model_q, q), (found_u, model_u, u)):
        if np.any(found):
            model += found
            _apply_components(image, psf2, found)
    return done


def _groups(stokes: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Stokes indices cleaned together: I alone, V alone, Q and U jointly (or alone if one is absent)."""
    groups = []
    if "I" in stokes:
        groups.append((stokes.index("I"),))
    if "Q" in stokes and "U" in stokes:
        groups.append((stokes.index("Q"), stokes.index("U")))
    else:
        groups += [(stokes.index(s),) for s in ("Q", "U") if s in stokes]
    if "V" in stokes:
        groups.append((stokes.index("V"),))
    return groups


def _peak(images: np.ndarray, group: tuple[int, ...], mask=None) -> float:
    plane = np.hypot(images[group[0]], images[group[1]]) if len(group) == 2 else np.abs(images[group[0]])
    if mask is not None:
        plane = np.where(mask, plane, 0)
    return float(np.nanmax(plane)) if np.isfinite(plane).any() else 0.0


def cotton_schwab(
    dirty: np.ndarray, psf2: np.ndarray, residual_of: Callable[[np.ndarray], np.ndarray], settings: CleanOptions,
    stokes: tuple[str, ...], label: str = "",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Deconvolve the (nstokes, ny, nx) dirty images.

    ``residual_of(model)`` returns the residual images of a model (nstokes, ny, nx) computed from
    the visibilities (degridding and gridding): the major cycle. Returns (model, residual, report)
    with the report holding iterations, major cycles, final rms and peak, the threshold and
    whether it was reached. A residual peak that grows by half from one major cycle to the next
    means the clean diverged: with ``on_divergence`` "stop" the group keeps the model and residual
    of the cycle before and is cleaned no further (the report says ``diverged`` and in which
    Stokes); with "error" it is a SpectropolError.
    """
    model = np.zeros_like(dirty)
    residual = dirty.copy()
    groups = _groups(stokes)
    remaining = {g: settings.niter for g in groups}
    masks: dict[tuple[int, ...], np.ndarray | None] = {g: None for g in groups}
    deep = {g: settings.auto_mask <= 0 for g in groups}  # past the auto-mask phase
    previous_peak = {g: np.inf for g in groups}
    # A group whose minor cycle ran down to its final threshold needs no further major cycles
    # (after the one that makes its residual exact), as in WSClean: otherwise the auto-threshold,
    # re-measured each cycle, keeps a tail of cycles of a few iterations each.
    converged = {g: False for g in groups}
    best: dict[tuple[int, ...], dict] = {}  # per group: model and residual of the lowest peak so far
    report = {"iterations": 0, "major_cycles": 0, "diverged": False}
    for major in range(settings.max_major):
        any_work = False
        for group in groups:
            rms = float(np.nanmean([mad_rms(residual[k]) for k in group]))
            peak = _peak(residual, group, masks[group])
            name = "+".join(stokes[k] for k in group)
            if peak > 1.5 * previous_peak[group] and major > 0 and not converged[group]:
                report["diverged"] = True
                problem = (f"CLEAN diverged in Stokes {name}: the residual peak grew from {previous_peak[group]:.4g} "
                           f"to {peak:.4g} Jy/beam")
                if settings.on_divergence == "error":
                    raise fail(label or None, f"{problem}; lower clean.mgain or clean.gain")
                # As WSClean's divergence limit does: keep the best model (the one before this major
                # cycle) and its residual, and clean this group no further.
                for k, (model_k, residual_k) in best[group].items():
                    model[k], residual[k] = model_k, residual_k
                report.setdefault("diverged_stokes", []).append(name)
                converged[group] = True
                log.warning("%s%s; stopped at the model of major cycle %d", f"{label}: " if label else "", problem,
                            major - 1)
                continue
            previous_peak[group] = peak
            best[group] = {k: (model[k].copy(), residual[k].copy()) for k in group}
            floor = max(settings.threshold_jy, settings.auto_threshold * rms if settings.auto_threshold > 0 else 0.0)
            if not deep[group]:
                floor = max(floor, settings.auto_mask * rms)
            stop = max(floor, (1.0 - settings.mgain) * peak)
            if converged[group]:
                continue
            if remaining[group] <= 0 or peak < floor:
                if not deep[group] and peak < floor:
                    # auto-mask: from now on clean only where components were found, to the threshold
                    masks[group] = np.any([model[k] != 0 for k in group], axis=0)
                    deep[group] = True
                    any_work = any_work or remaining[group] > 0
                continue
            any_work = True
            budget = remaining[group]
            if len(group) == 2:
                done = hogbom_polarised(residual[group[0]], residual[group[1]], psf2, model[group[0]], model[group[1]],
                                        gain=settings.gain, threshold=stop, niter=remaining[group], mask=masks[group])
            else:
                done = hogbom(residual[group[0]], psf2, model[group[0]], gain=settings.gain, threshold=stop,
                              niter=remaining[group], mask=masks[group])
            remaining[group] = budget - done
            report["iterations"] += done
            if stop == floor and done < budget:  # it ran down to the final threshold
                if deep[group]:
                    converged[group] = True
                else:  # auto-mask phase over: from now on only inside the mask, to the threshold
                    masks[group] = np.any([model[k] != 0 for k in group], axis=0)
                    deep[group] = True
        if not any_work:
            break
        residual = residual_of(model)
        report["major_cycles"] = major + 1
        log.info("%smajor cycle %d: %d iterations so far, residual peak %s", f"{label}: " if label else "", major + 1,
                 report["iterations"],
                 ", ".join(f"{'+'.join(stokes[k] for k in g)} {_peak(residual, g):.4g}" for g in groups))
    rms = {stokes[k]: mad_rms(residual[k]) for k in range(len(stokes))}
    peaks = {stokes[k]: float(np.nanmax(np.abs(residual[k]))) if np.isfinite(residual[k]).any() else None
             for k in range(len(stokes))}
    group_rms = {g: float(np.nanmean([rms[stokes[k]] for k in g])) for g in groups}
    threshold = {"+".join(stokes[k] for k in g): max(settings.threshold_jy, settings.auto_threshold * group_rms[g])
                 for g in groups}
    diverged = set(report.get("diverged_stokes", []))

    def _reached(g) -> bool:
        name = "+".join(stokes[k] for k in g)
        return (converged[g] and name not in diverged) or _peak(residual, g, masks[g]) <= 1.05 * threshold[name]

    report.update({
        "residual_rms": rms, "residual_peak": peaks, "threshold": threshold,
        # reached: the minor cycles ran down to the final threshold (rather than out of iterations)
        "threshold_reached": all(_reached(g) for g in groups),
    })
    return model, residual, report


def restore(model: np.ndarray, residual: np.ndarray, beam: dict, cell_rad: float) -> np.ndarray:
    """Restored images: each model plane convolved with the Gaussian restoring beam (peak 1, so
    units stay Jy/beam) plus the residual."""
    from scipy.signal import fftconvolve

    ny, nx = model.shape[-2:]
    # An odd-sized kernel out to 3 FWHM, centred on its middle pixel, so that mode='same' keeps
    # every component on its own pixel.
    half = int(np.ceil(3 * beam["bmaj_deg"] / np.rad2deg(cell_rad)))
    half = min(half, (min(ny, nx) - 1) // 2)
    kernel = gaussian_beam_image(beam, (2 * half + 1, 2 * half + 1), cell_rad)
    restored = residual.copy()
    for k in range(model.shape[0]):
        if np.any(model[k]):
            restored[k] += fftconvolve(model[k], kernel, mode="same").astype(residual.dtype)
    return restored
