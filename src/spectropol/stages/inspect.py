"""The inspect stage: fingerprint each Measurement Set's channels (a job per MS), then check every
input once and record what every channel job needs: the data selection of each spectral window
and the image geometry shared by all channels (so that an automatic cell is the same across the
band), kept within the horizon of the SIN projection."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence

import numpy as np

from ..constants import ARCSEC, SPEED_OF_LIGHT
from ..errors import fail
from ..io.fingerprint import Fingerprints, ms_fingerprints
from ..io.ms import Selection, select_data
from ..io.stores import write_json
from ..io.wcs import celestial_header, observation_keywords
from ..options import GeometryOptions, SelectionOptions

log = logging.getLogger(__name__)

MIN_NPIX = 32


@dataclasses.dataclass(frozen=True)
class ImageGeometry:
    """Image side and cell of every channel, and the celestial FITS header they all carry."""

    npix: int
    cell_rad: float
    cell_arcsec: float
    wcs: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ImageGeometry:
        return cls(npix=int(d["npix"]), cell_rad=float(d["cell_rad"]), cell_arcsec=float(d["cell_arcsec"]),
                   wcs=d["wcs"])


@dataclasses.dataclass(frozen=True)
class Inspection:
    """The selection of each (input MS index, spw) and the image geometry, as inspect_ms wrote them."""

    selections: dict[tuple[int, int], Selection]
    geometry: ImageGeometry

    def selection(self, ms_index: int, spw: int) -> Selection:
        return self.selections[(ms_index, spw)]

    def to_dict(self) -> dict:
        inputs: dict[int, dict] = {}
        for (k, spw), selection in sorted(self.selections.items()):
            inputs.setdefault(k, {})[str(spw)] = selection.to_dict()
        return {"inputs": [inputs[k] for k in sorted(inputs)], "geometry": self.geometry.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> Inspection:
        selections = {(k, int(spw)): Selection.from_dict(s)
                      for k, spws in enumerate(d["inputs"]) for spw, s in spws.items()}
        return cls(selections=selections, geometry=ImageGeometry.from_dict(d["geometry"]))


def image_geometry(selections: Sequence[Selection], options: GeometryOptions) -> tuple[int, float, str]:
    """(npix, cell_rad, note) shared by all channels. An automatic cell samples the finest fringe of
    the band (longest baseline at the highest frequency) with ``pixels_per_beam`` pixels. The field
    never reaches beyond the horizon of the SIN projection (|l|, |m| <= 1): a larger one is cut to
    the whole visible sky, and ``note`` says so (empty otherwise)."""
    if options.cell_arcsec is None:
        uv_max = max(s.max_uvw_m * s.freqs.max() / SPEED_OF_LIGHT for s in selections)  # wavelengths
        cell_rad = 1.0 / (options.pixels_per_beam * uv_max)
    else:
        cell_rad = options.cell_arcsec * ARCSEC
    npix = options.size_px
    if npix % 2 or npix < MIN_NPIX:
        raise fail(None, f"imaging.size must be even and at least {MIN_NPIX} (got {npix})")
    note = ""
    if npix * cell_rad / 2 > 1.0:
        wanted = npix * cell_rad
        npix = max(MIN_NPIX, 2 * int(np.floor(1.0 / cell_rad)))
        if npix * cell_rad / 2 > 1.0:
            cell_rad = 2.0 / npix
        note = (f"{npix} pixels of {np.rad2deg(cell_rad):.3g} deg instead of {options.size_px}: the image would span "
                f"{np.rad2deg(wanted):.0f} deg of direction cosine, beyond the horizon of the SIN projection")
    return int(npix), float(cell_rad), note


def inspect_ms(inputs: Sequence[tuple[str, Sequence[int | None]]], out_path: str | os.PathLike,
               selection_options: SelectionOptions = SelectionOptions(),
               geometry_options: GeometryOptions = GeometryOptions()) -> Inspection:
    """Select the data of each (MS, spectral windows) of ``inputs`` (a None spw: the only one),
    derive the image geometry and write both to ``out_path`` (JSON)."""
    selections = {}
    for k, (ms, spws) in enumerate(inputs):
        for spw in spws:
            selection = select_data(ms, column=selection_options.column, spw=spw, field=selection_options.field,
                                    time_range_utc=selection_options.time_range_utc)
            selections[(k, selection.spw)] = selection
    first = next(iter(selections.values()))
    for selection in selections.values():
        separation = _separation_arcsec(first.phase_centre_rad, selection.phase_centre_rad)
        if separation > selection_options.phase_centre_tolerance_arcsec:
            raise fail(selection.ms, f"phase centre is {separation:.1f} arcsec from that of {first.ms} (more than "
                                     f"input.phase_centre_tolerance_arcsec = "
                                     f"{selection_options.phase_centre_tolerance_arcsec:g})")
    npix, cell_rad, note = image_geometry(list(selections.values()), geometry_options)
    if note:
        log.warning("%s: %s", first.ms, note)
    ra, dec = first.phase_centre_rad
    start = min(s.time_range_mjd_s[0] for s in selections.values())
    # The header every channel image carries, made once (astropy.time is slow to import).
    wcs = celestial_header(ra, dec, npix, npix, cell_rad) | observation_keywords(start, first.telescope)
    if np.isfinite(first.dish_diameter_m):  # the catalogue's analytic primary beam reads it
        wcs["DISHDIAM"] = first.dish_diameter_m
    geometry = ImageGeometry(npix=npix, cell_rad=cell_rad, cell_arcsec=cell_rad / ARCSEC, wcs=wcs)
    inspection = Inspection(selections=selections, geometry=geometry)
    write_json(out_path, inspection.to_dict())
    for (k, spw), s in selections.items():
        log.info("%s spw %d: %d rows, %d channels, %s feeds %s", s.ms, spw, s.nrows, len(s.freqs),
                 s.to_dict()["feed_basis"], list(s.corr_names))
    log.info("image %d^2 pixels of %.2f arcsec", npix, geometry.cell_arcsec)
    return inspection


def _separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    (ra0, dec0), (ra1, dec1) = a, b
    cos_sep = np.sin(dec0) * np.sin(dec1) + np.cos(dec0) * np.cos(dec1) * np.cos(ra1 - ra0)
    return float(np.arccos(np.clip(cos_sep, -1.0, 1.0))) / ARCSEC


def read_inspection(path: str | os.PathLike) -> Inspection:
    """The selections and image geometry written by inspect_ms."""
    with open(path) as handle:
        return Inspection.from_dict(json.load(handle))


def fingerprint_ms(ms: str, record: str | os.PathLike, spws: Sequence[int],
                   options: SelectionOptions = SelectionOptions()) -> Fingerprints:
    """The fingerprint stage: a content hash of every channel of the spectral windows ``spws`` of
    ``ms`` (data column, FLAG, WEIGHT_SPECTRUM, with the row columns) and its unflagged
    visibilities, written to ``record``, which is also its own cache: only the columns whose
    storage files changed since are read again."""
    fingerprints = ms_fingerprints(ms, column=options.column, spws=list(spws), field=options.field, cache_path=record)
    if os.path.exists(record):
        os.utime(record)  # the record is this job's output, even when nothing in it changed
    log.info("%s: fingerprints of %d channels, layout %s", ms, sum(len(c) for c in fingerprints.channels.values()),
             fingerprints.layout)
    return fingerprints
