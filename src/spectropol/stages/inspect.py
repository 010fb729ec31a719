"""The inspect stage: check the Measurement Set once and record what every channel job needs, the
data selection and the image geometry shared by all channels (so that an automatic cell is the
same across the band)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

from ..constants import ARCSEC, SPEED_OF_LIGHT
from ..errors import fail
from ..io.fingerprint import Fingerprints, ms_fingerprints
from ..io.ms import Selection, select_data
from ..io.stores import write_json
from ..io.wcs import celestial_header, observation_keywords
from ..options import GeometryOptions, SelectionOptions

log = logging.getLogger(__name__)


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


def image_geometry(selection: Selection, options: GeometryOptions) -> tuple[int, float]:
    """(npix, cell_rad) shared by all channels. An automatic cell samples the finest fringe of the
    band (longest baseline at the highest frequency) with ``pixels_per_beam`` pixels."""
    if options.cell_arcsec is None:
        uv_max = selection.max_uvw_m * selection.freqs.max() / SPEED_OF_LIGHT  # wavelengths
        cell_rad = 1.0 / (options.pixels_per_beam * uv_max)
    else:
        cell_rad = options.cell_arcsec * ARCSEC
    npix = options.size_px
    if npix % 2 or npix < 32:
        raise fail(None, f"imaging.size must be even and at least 32 (got {npix})")
    return int(npix), float(cell_rad)


def inspect_ms(ms: str, out_path: str | os.PathLike, selection_options: SelectionOptions = SelectionOptions(),
               geometry_options: GeometryOptions = GeometryOptions()) -> tuple[Selection, ImageGeometry]:
    """Select the data of ``ms``, derive the image geometry and write both to ``out_path`` (JSON)."""
    selection = select_data(ms, column=selection_options.column, spw=selection_options.spw,
                            field=selection_options.field)
    npix, cell_rad = image_geometry(selection, geometry_options)
    ra, dec = selection.phase_centre_rad
    # The header every channel image carries, made once (astropy.time is slow to import).
    wcs = celestial_header(ra, dec, npix, npix, cell_rad) | observation_keywords(selection.time_range_mjd_s[0],
                                                                                   selection.telescope)
    geometry = ImageGeometry(npix=npix, cell_rad=cell_rad, cell_arcsec=cell_rad / ARCSEC, wcs=wcs)
    write_json(out_path, {"selection": selection.to_dict(), "geometry": geometry.to_dict()})
    log.info("%s: %d rows, %d channels, %s feeds %s, cell %.2f arcsec", ms, selection.nrows, len(selection.freqs),
             selection.to_dict()["feed_basis"], list(selection.corr_names), geometry.cell_arcsec)
    return selection, geometry


def read_inspection(path: str | os.PathLike) -> tuple[Selection, ImageGeometry]:
    """The Selection and image geometry written by inspect_ms."""
    with open(path) as handle:
        record = json.load(handle)
    return Selection.from_dict(record["selection"]), ImageGeometry.from_dict(record["geometry"])


def fingerprint_ms(ms: str, record: str | os.PathLike, options: SelectionOptions = SelectionOptions()) -> Fingerprints:
    """The fingerprint stage: a content hash of every channel of the selected data of ``ms``
    (data column, FLAG, WEIGHT_SPECTRUM, with the row columns), written to ``record``, which is
    also its own cache: only the columns whose storage files changed since are read again."""
    fingerprints = ms_fingerprints(ms, column=options.column, spw=options.spw, field=options.field, cache_path=record)
    if os.path.exists(record):
        os.utime(record)  # the record is this job's output, even when nothing in it changed
    log.info("%s: %d channel fingerprints, layout %s", ms, len(fingerprints.channels), fingerprints.layout)
    return fingerprints
