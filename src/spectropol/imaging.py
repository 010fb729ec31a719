"""The image stage: weighted dirty images of Stokes I, Q, U, V and the PSF of one channel with
ducc0's wgridder, a restoring beam fitted to the PSF, and QA statistics.

The per-channel store holds one variable per image kind over (stokes, y, x) -- ``dirty`` now;
``model``, ``residual`` and ``restored`` join it when deconvolution runs -- plus ``psf`` (y, x),
the WCS header and the beam in its attributes.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from .beam import fit_restoring_beam
from .deconvolution import CleanSettings, cotton_schwab, restore
from .errors import fail
from .measurement import SPEED_OF_LIGHT, ducc_uvw
from .ms import Selection
from .products import config_hash, provenance, write_qa, write_store
from .qa import image_statistics
from .split import load_channel_vis
from .stokes import STOKES
from .weighting import imaging_weights

log = logging.getLogger(__name__)

ARCSEC = np.pi / (180 * 3600)


def image_geometry(selection: Selection, npix: int, cell_arcsec: float | None, pixels_per_beam: float = 4.0) -> dict:
    """Image size and cell shared by all channels. An automatic cell samples the finest fringe of
    the band (longest baseline at the highest frequency) with ``pixels_per_beam`` pixels."""
    if cell_arcsec is None:
        uv_max = selection.max_uvw_m * selection.freqs.max() / SPEED_OF_LIGHT  # wavelengths
        cell_rad = 1.0 / (pixels_per_beam * uv_max)
    else:
        cell_rad = cell_arcsec * ARCSEC
    if npix % 2 or npix < 32:
        raise fail(None, f"imaging.size must be even and at least 32 (got {npix})")
    return {"npix": int(npix), "cell_rad": float(cell_rad), "cell_arcsec": float(cell_rad / ARCSEC)}


def dirty_image(
    uvw: np.ndarray, freq: float, vis: np.ndarray, weight: np.ndarray, npix: int, cell_rad: float, *,
    wgridding: bool = True, epsilon: float = 2e-5, nthreads: int = 1,
) -> np.ndarray:
    """Dirty image array[y, x] of sum w V exp(-i phase) / sum w (Jy/beam for a PSF peaking at 1).

    Single precision unless epsilon < 1e-5 demands double (ducc0's limit for complex64).
    """
    from ducc0.wgridder.experimental import vis2dirty

    total = float(weight.sum())
    if total <= 0:
        return np.full((npix, npix), np.nan, dtype=np.float32)
    ctype = np.complex64 if epsilon >= 1e-5 else np.complex128
    image = vis2dirty(
        uvw=ducc_uvw(uvw), freq=np.array([freq]), vis=np.ascontiguousarray(vis, dtype=ctype)[:, None],
        wgt=np.ascontiguousarray(weight, dtype=ctype().real.dtype)[:, None],
        npix_x=npix, npix_y=npix, pixsize_x=cell_rad, pixsize_y=cell_rad, epsilon=epsilon,
        do_wgridding=wgridding, divide_by_n=False, nthreads=nthreads,
    )
    return (image / total).astype(np.float32)


def predict_visibilities(
    uvw: np.ndarray, freq: float, image: np.ndarray, cell_rad: float, *, wgridding: bool = True, epsilon: float = 2e-5,
    nthreads: int = 1,
) -> np.ndarray:
    """Visibilities (nrow,) of a model image array[y, x] in Jy/pixel: the exact adjoint of
    dirty_image's gridding (ducc0's dirty2vis with the same conventions)."""
    from ducc0.wgridder.experimental import dirty2vis

    double = epsilon < 1e-5
    model = np.ascontiguousarray(image, dtype=np.float64 if double else np.float32)
    vis = dirty2vis(uvw=ducc_uvw(uvw), freq=np.array([freq]), dirty=model, pixsize_x=cell_rad, pixsize_y=cell_rad,
                    epsilon=epsilon, do_wgridding=wgridding, divide_by_n=False, nthreads=nthreads)
    return vis[:, 0]


def image_channel(
    vis_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike, *,
    npix: int, cell_rad: float, wcs: dict, weighting: str = "briggs", robust: float = 0.0, wgridding: bool = True,
    epsilon: float = 2e-5, nthreads: int = 1, clean: dict | None = None,
) -> dict:
    """Image one channel's Stokes visibilities; write the image store and its QA document.

    ``wcs`` is the celestial header shared by all channels (from the split plan). ``clean``
    (CleanSettings fields) with niter > 0 deconvolves: the store then also holds model, residual
    and restored planes, and QA the clean's report."""
    arrays, vis_attrs = load_channel_vis(vis_store)
    channel = int(vis_attrs["channel"])
    freq = float(vis_attrs["freq_hz"])
    uvw, vis = arrays["uvw"], arrays["vis"]
    weight = arrays["weight"].astype(np.float64)
    i_weight = weight[:, 0]

    planes = np.full((len(STOKES), npix, npix), np.nan, dtype=np.float32)
    used = {}
    weights = {}
    gridding = dict(wgridding=wgridding, epsilon=epsilon, nthreads=nthreads)
    for k, stokes in enumerate(STOKES):
        weights[k] = imaging_weights(uvw, freq, weight[:, k], scheme=weighting, npix=npix, cell_rad=cell_rad, robust=robust,
                                     density_weight=i_weight)
        used[stokes] = int((weights[k] > 0).sum())
        if used[stokes]:
            planes[k] = dirty_image(uvw, freq, vis[:, k], weights[k], npix, cell_rad, **gridding)
    psf_weight = imaging_weights(uvw, freq, i_weight, scheme=weighting, npix=npix, cell_rad=cell_rad, robust=robust)
    deconvolve = bool(clean) and clean.get("niter", 0) > 0 and used["I"] > 0
    # Deconvolution needs the PSF over twice the field, so that a component anywhere can be
    # subtracted everywhere; its central part is the image-sized PSF.
    psf_size = 2 * npix if deconvolve else npix
    psf_full = dirty_image(uvw, freq, np.ones(len(uvw), np.complex64), psf_weight, psf_size, cell_rad, **gridding)
    start = (psf_size - npix) // 2
    psf = psf_full[start : start + npix, start : start + npix]
    if np.isfinite(psf).all():
        beam = fit_restoring_beam(psf, cell_rad)
    else:
        beam = {"bmaj_deg": float("nan"), "bmin_deg": float("nan"), "bpa_deg": float("nan")}

    images = {"dirty": planes}
    clean_report = None
    if clean and clean.get("niter", 0) > 0 and not deconvolve:
        # no data in this channel: same planes as its neighbours, all NaN, so the cube can gather it
        images.update({name: np.full_like(planes, np.nan) for name in ("model", "residual", "restored")})
    if deconvolve:
        present = tuple(s for s in STOKES if used[s])
        index = [STOKES.index(s) for s in present]

        def residual_of(model: np.ndarray) -> np.ndarray:
            out = np.empty_like(model)
            for j, k in enumerate(index):
                model_vis = predict_visibilities(uvw, freq, model[j], cell_rad, **gridding) if np.any(model[j]) else 0
                out[j] = dirty_image(uvw, freq, vis[:, k] - model_vis, weights[k], npix, cell_rad, **gridding)
            return out

        settings = CleanSettings(**clean)
        model, residual, clean_report = cotton_schwab(planes[index], psf_full, residual_of, settings, present,
                                                      label=f"{vis_store}")
        restored = restore(model, residual, beam, cell_rad)
        for name, values in (("model", model), ("residual", residual), ("restored", restored)):
            full = np.full_like(planes, np.nan)
            full[index] = values
            images[name] = full

    params = {"npix": npix, "cell_rad": cell_rad, "weighting": weighting, "robust": robust, "wgridding": wgridding,
              "epsilon": epsilon, "clean": clean or {}}
    descriptions = {
        "dirty": ("Jy/beam", "dirty image, PSF peak normalised to 1"),
        "model": ("Jy/pixel", "clean components"),
        "residual": ("Jy/beam", "residual image after deconvolution"),
        "restored": ("Jy/beam", "model convolved with the restoring beam, plus the residual"),
    }
    variables = {name: (("stokes", "y", "x"), values, {"units": descriptions[name][0], "description": descriptions[name][1]})
                 for name, values in images.items()}
    write_store(out_store, variables | {
        "psf": (("y", "x"), np.ascontiguousarray(psf), {"units": "", "description": "point spread function (Stokes I weights)"}),
        "stokes": (("stokes",), np.array(STOKES), {}),
    }, {
        "channel": channel, "freq_hz": freq, "wcs": wcs, "beam": beam, "imaging": params,
        "stokes_present": vis_attrs["stokes_present"], "ms": vis_attrs["selection"]["ms"],
        "provenance": provenance({"vis": str(vis_store)}, config_hash(params)),
    }, chunks={name: (1, npix, npix) for name in images})

    stats = {
        "channel": channel, "freq_hz": freq, "beam": beam,
        "visibilities_used": used,
        "flagged_fraction": float(1.0 - (i_weight > 0).mean()) if len(i_weight) else 1.0,
        "stokes": {s: image_statistics(planes[k]) for k, s in enumerate(STOKES)},
        "imaging": params,
    }
    if clean_report is not None:
        stats["clean"] = clean_report
        stats["restored"] = {s: image_statistics(images["restored"][k]) for k, s in enumerate(STOKES)}
    write_qa(qa_path, "channel_image", stats, rule="image_channel")
    log.info("channel %d: Stokes I peak %.4g Jy/beam, rms %.3g; beam %.1f x %.1f arcsec, pa %.1f deg", channel,
             stats["stokes"]["I"]["peak"], stats["stokes"]["I"]["mad_rms"], beam["bmaj_deg"] * 3600, beam["bmin_deg"] * 3600, beam["bpa_deg"])
    return stats
