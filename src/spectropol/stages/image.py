"""The image stage: weighted dirty images of Stokes I, Q, U, V and the PSF of one channel with
ducc0's wgridder, a restoring beam fitted to the PSF, CLEAN when asked, and QA statistics.

The per-channel store holds one variable per image kind over (stokes, y, x) -- ``dirty``, and
``model``, ``residual`` and ``restored`` when deconvolution runs -- plus ``psf`` (y, x), the WCS
header and the beam in its attributes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import __version__
from ..constants import STOKES
from ..io.channels import channel_name, read_channel_attrs, read_channel_vis
from ..io.stores import config_hash, provenance, quiet_zarr_v3, remove_path, write_store
from ..kernels.beam import fit_restoring_beam
from ..kernels.clean import cotton_schwab, restore
from ..kernels.gridding import dirty_image, predict_visibilities
from ..kernels.statistics import image_statistics
from ..kernels.weighting import imaging_weights, uv_range_mask
from ..measurement import pixel_direction_cosines
from ..options import ChannelSettings, CleanOptions, ImagingOptions
from ..qa.documents import write_qa
from .inspect import ImageGeometry, read_inspection

log = logging.getLogger(__name__)

IMAGE_KINDS = {
    "dirty": ("Jy/beam", "dirty image, PSF peak normalised to 1"),
    "model": ("Jy/pixel", "clean components"),
    "residual": ("Jy/beam", "residual image after deconvolution"),
    "restored": ("Jy/beam", "model convolved with the restoring beam, plus the residual"),
}
NAN_BEAM = {"bmaj_deg": float("nan"), "bmin_deg": float("nan"), "bpa_deg": float("nan")}


@dataclasses.dataclass
class ImageResult:
    """The image stage's QA figures of one channel."""

    channel: int
    freq_hz: float
    beam: dict
    visibilities_used: dict[str, int]
    flagged_fraction: float
    stokes: dict
    imaging: dict
    clean: dict | None = None
    restored: dict | None = None


def _weighted_dirty_planes(uvw, freq, vis, weight, geometry: ImageGeometry, imaging: ImagingOptions, gridding: dict):
    """(planes (stokes, y, x), imaging weights per Stokes index, visibilities used per Stokes).
    Q, U and V share the uv density of Stokes I, so that every Stokes has the same PSF."""
    npix, cell_rad = geometry.npix, geometry.cell_rad
    planes = np.full((len(STOKES), npix, npix), np.nan, dtype=np.float32)
    weights, used = {}, {}
    for k, stokes in enumerate(STOKES):
        weights[k] = imaging_weights(uvw, freq, weight[:, k], scheme=imaging.weighting, npix=npix, cell_rad=cell_rad,
                                     robust=imaging.robust, density_weight=weight[:, 0])
        used[stokes] = int((weights[k] > 0).sum())
        if used[stokes]:
            planes[k] = dirty_image(uvw, freq, vis[:, k], weights[k], npix, cell_rad, **gridding)
    return planes, weights, used


def _psf(uvw, freq, i_weight, geometry: ImageGeometry, imaging: ImagingOptions, gridding: dict,
         size: int) -> np.ndarray:
    """The PSF (Stokes I weights) on a ``size`` square image."""
    psf_weight = imaging_weights(uvw, freq, i_weight, scheme=imaging.weighting, npix=geometry.npix,
                                 cell_rad=geometry.cell_rad, robust=imaging.robust)
    return dirty_image(uvw, freq, np.ones(len(uvw), np.complex64), psf_weight, size, geometry.cell_rad, **gridding)


def _deconvolve(planes, psf_full, uvw, freq, vis, weights, used, geometry, clean: CleanOptions, beam, gridding, label,
                outside):
    """Cotton-Schwab CLEAN of the Stokes planes that have data: (model, residual, restored) as
    full (stokes, y, x) arrays (NaN where a Stokes is absent) and the CLEAN report."""
    npix, cell_rad = geometry.npix, geometry.cell_rad
    present = tuple(s for s in STOKES if used[s])
    index = [STOKES.index(s) for s in present]

    def residual_of(model: np.ndarray) -> np.ndarray:
        out = np.empty_like(model)
        for j, k in enumerate(index):
            model_vis = predict_visibilities(uvw, freq, model[j], cell_rad, **gridding) if np.any(model[j]) else 0
            out[j] = dirty_image(uvw, freq, vis[:, k] - model_vis, weights[k], npix, cell_rad, **gridding)
        if outside is not None:
            out[:, outside] = np.nan
        return out

    model, residual, report = cotton_schwab(planes[index], psf_full, residual_of, clean, present, label=label)
    images = {}
    for name, values in (("model", model), ("residual", residual), ("restored", restore(model, residual, beam,
                                                                                        cell_rad))):
        full = np.full_like(planes, np.nan)
        full[index] = values
        images[name] = full
    return images, report


@functools.lru_cache(maxsize=2)
def beyond_horizon(npix: int, cell_rad: float) -> np.ndarray | None:
    """(y, x) True where a pixel's direction cosines are outside the sky (l^2 + m^2 >= 1): the SIN
    projection has no direction there, so every product is NaN. None when no pixel is (the corners
    of the image are inside the sky), as for nearly every field."""
    if 2 * (npix / 2 * cell_rad) ** 2 < 0.99:
        return None
    y, x = np.mgrid[0:npix, 0:npix]
    l, m = pixel_direction_cosines(x, y, npix, npix, cell_rad)
    outside = l**2 + m**2 >= 1.0
    return outside if outside.any() else None


def image_channel(vis_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                  geometry: ImageGeometry, settings: ChannelSettings, *, nthreads: int = 1,
                  keep: Sequence[str] | None = None, rule: str = "spectropol") -> ImageResult:
    """Image one channel's Stokes visibilities; write the image store and its QA document.

    ``geometry`` is the image size, cell and celestial header shared by all channels (from the
    inspect stage). With ``settings.clean.niter`` > 0 the channel is deconvolved: model, residual
    and restored planes are made too, and QA has the CLEAN's report. The store holds the image
    kinds in ``keep`` (of dirty, model, residual, restored, psf; None: all that were made); the
    QA document describes the images whether kept or not."""
    arrays, vis_attrs = read_channel_vis(vis_store)
    channel, freq = int(vis_attrs["channel"]), float(vis_attrs["freq_hz"])
    uvw, vis = arrays["uvw"], arrays["vis"]
    weight = arrays["weight"].astype(np.float64)
    imaging, clean = settings.imaging, settings.clean
    if imaging.minuv_l is not None or imaging.maxuv_l is not None:
        weight[~uv_range_mask(uvw, freq, imaging.minuv_l, imaging.maxuv_l)] = 0.0
    npix, cell_rad = geometry.npix, geometry.cell_rad
    gridding = dict(wgridding=imaging.wgridding, epsilon=imaging.epsilon, nthreads=nthreads)

    planes, weights, used = _weighted_dirty_planes(uvw, freq, vis, weight, geometry, imaging, gridding)
    outside = beyond_horizon(npix, cell_rad)
    if outside is not None:
        planes[:, outside] = np.nan
    deconvolve = clean.niter > 0 and used["I"] > 0
    # Deconvolution needs the PSF over twice the field, so that a component anywhere can be
    # subtracted everywhere; its central part is the image-sized PSF.
    psf_size = 2 * npix if deconvolve else npix
    psf_full = _psf(uvw, freq, weight[:, 0], geometry, imaging, gridding, psf_size)
    start = (psf_size - npix) // 2
    psf = psf_full[start : start + npix, start : start + npix]
    beam = fit_restoring_beam(psf, cell_rad) if np.isfinite(psf).all() else dict(NAN_BEAM)

    images = {"dirty": planes}
    report = None
    if deconvolve:
        more, report = _deconvolve(planes, psf_full, uvw, freq, vis, weights, used, geometry, clean, beam, gridding,
                                   label=f"{vis_store}", outside=outside)
        images |= more
    elif clean.niter > 0:
        # no data in this channel: same planes as its neighbours, all NaN, so the cube can gather it
        images |= {name: np.full_like(planes, np.nan) for name in ("model", "residual", "restored")}

    params = {"npix": npix, "cell_rad": cell_rad, **dataclasses.asdict(imaging), "clean": dataclasses.asdict(clean)}
    kept = set(images) | {"psf"} if keep is None else set(keep)
    stored = {name: values for name, values in images.items() if name in kept}
    variables = {name: (("stokes", "y", "x"), values, {"units": IMAGE_KINDS[name][0],
                                                       "description": IMAGE_KINDS[name][1]})
                 for name, values in stored.items()}
    if "psf" in kept:
        variables["psf"] = (("y", "x"), np.ascontiguousarray(psf),
                            {"units": "", "description": "point spread function (Stokes I weights)"})
    write_store(out_store, variables | {
        "stokes": (("stokes",), np.array(STOKES), {}),
    }, {
        "channel": channel, "freq_hz": freq, "wcs": geometry.wcs, "beam": beam, "imaging": params,
        "stokes_present": vis_attrs["stokes_present"], "ms": vis_attrs["selection"]["ms"],
        "source": vis_attrs.get("source"), "clean_diverged": bool(report and report["diverged"]),
        "provenance": provenance({"vis": str(vis_store)}, config_hash(params)),
        "recipe": image_recipe(vis_attrs, geometry, settings, keep),
    }, chunks={name: (1, npix, npix) for name in stored}, raw=tuple(stored) + ("psf",),
        # a plane per Stokes, the four in one file: a channel's store is a file per image kind
        shards={name: (len(STOKES), npix, npix) for name in stored})

    result = ImageResult(
        channel=channel, freq_hz=freq, beam=beam, visibilities_used=used,
        flagged_fraction=float(1.0 - (weight[:, 0] > 0).mean()) if len(weight) else 1.0,
        stokes={s: image_statistics(planes[k]) for k, s in enumerate(STOKES)}, imaging=params,
    )
    if report is not None:
        result.clean = report
        result.restored = {s: image_statistics(images["restored"][k]) for k, s in enumerate(STOKES)}
    write_qa(qa_path, "channel_image", _without_empty(result), rule)
    log.info("channel %d: Stokes I peak %.4g Jy/beam, rms %.3g; beam %.1f x %.1f arcsec, pa %.1f deg", channel,
             result.stokes["I"]["peak"], result.stokes["I"]["mad_rms"], beam["bmaj_deg"] * 3600,
             beam["bmin_deg"] * 3600,
             beam["bpa_deg"])
    return result


def _without_empty(result: ImageResult) -> dict:
    """The QA document body: a dirty-only channel has no clean or restored sections at all."""
    return {k: v for k, v in dataclasses.asdict(result).items() if not (k in ("clean", "restored") and v is None)}


def image_recipe(vis_attrs: dict, geometry: ImageGeometry, settings: ChannelSettings,
                 keep: Sequence[str] | None = None) -> str | None:
    """What a channel's store is made from: its visibilities' content, the image geometry, its
    settings, the image kinds it keeps and the software version. None for a split store that does
    not say its content."""
    if "content_digest" not in vis_attrs:
        return None
    return config_hash({"vis": vis_attrs["content_digest"], "geometry": geometry.to_dict(),
                        "settings": settings.to_dict(), "software_version": __version__}
                       | ({} if keep is None else {"keep": sorted(keep)}))


def _kept_image(image_store: Path, qa_path: Path, recipe: str | None, source: dict | None) -> bool:
    """True when ``image_store`` (and its QA document) exist and were made by ``recipe``: the
    channel is left as it is, so that the cube sees the same product and does not rewrite its
    plane. The channel's source is brought up to date (a re-delivered MS may sit elsewhere)."""
    import zarr

    if recipe is None or not qa_path.is_file() or not image_store.is_dir():
        return False
    try:
        with quiet_zarr_v3():
            group = zarr.open_group(image_store, mode="r+", zarr_format=3)
            if group.attrs.get("recipe") != recipe:
                return False
            if source is not None and group.attrs.get("source") != source:
                group.attrs["source"] = source
                group.attrs["ms"] = source["ms"]
    except (FileNotFoundError, KeyError, ValueError):
        return False
    return True


def image_block(inspection: str | os.PathLike, vis_dir: str | os.PathLike, channels: Sequence[int],
                settings: Sequence[ChannelSettings], image_dir: str | os.PathLike, qa_dir: str | os.PathLike, *,
                width: int, nthreads: int = 1, keep: Sequence[str] | None = None,
                rule: str = "spectropol") -> list[ImageResult | None]:
    """Image each of ``channels`` (with its own settings) from ``vis_dir/NNNNN.zarr`` into
    ``image_dir/NNNNN.zarr`` with its QA document in ``qa_dir/NNNNN.json``, one after another.

    A channel whose image store was already made from the same visibilities, geometry, settings
    and software version is kept (its result is None): when one channel of a block changes, only
    that channel is imaged again (the rule declares its outputs ``update()``). Stores of channels
    no longer in the block are removed. ``keep``: the image kinds each store keeps (image_channel)."""
    geometry = read_inspection(inspection).geometry
    image_dir, qa_dir = Path(image_dir), Path(qa_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    qa_dir.mkdir(parents=True, exist_ok=True)
    names = [channel_name(channel, width) for channel in channels]
    for stale in [*image_dir.glob("*.zarr"), *qa_dir.glob("*.json")]:
        if stale.name.split(".")[0] not in names:
            remove_path(stale)
    results: list[ImageResult | None] = []
    for name, channel_settings in zip(names, settings):
        vis_store, image_store, qa_path = Path(vis_dir) / f"{name}.zarr", image_dir / f"{name}.zarr", \
            qa_dir / f"{name}.json"
        vis_attrs = read_channel_attrs(vis_store)
        recipe = image_recipe(vis_attrs, geometry, channel_settings, keep)
        if _kept_image(image_store, qa_path, recipe, vis_attrs.get("source")):
            log.info("channel %s: images kept (same visibilities, geometry and settings)", name)
            results.append(None)
            continue
        results.append(image_channel(vis_store, image_store, qa_path, geometry, channel_settings, nthreads=nthreads,
                                     keep=keep, rule=rule))
    log.info("%d of %d channels imaged, %d kept", sum(r is not None for r in results), len(results),
             sum(r is None for r in results))
    return results
