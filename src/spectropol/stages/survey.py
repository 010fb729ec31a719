"""The survey stages: the fields' catalogues merged into one, and the survey's QA by field.

Neighbouring fields overlap, and a source in the overlap is catalogued by each field that sees it.
The survey catalogue keeps it once: rows of different fields closer than a beam (the larger
restoring beam of the two) are one source, and the row kept is the one measured nearest its own
field's centre, where the primary beam is highest and the image least distorted (the convention
of survey mosaics that keep the best-placed detection, e.g. POSSUM and LoTSS pointing catalogues).
The row says where it came from: ``field``, ``dataref`` (the field's catalogue and its row id)
and ``Nfields`` (how many fields catalogued the source).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import fail
from ..io.stores import atomic_path, open_store, provenance, write_json
from .catalogue import TABLE_FORMATS, with_provenance

log = logging.getLogger(__name__)

SURVEY_FILES = {"fits": "catalogue.fits", "ecsv": "catalogue.ecsv", "votable": "catalogue.vot", "csv": "catalogue.csv"}


@dataclasses.dataclass(frozen=True)
class FieldProducts:
    """What the survey stages read of one field: its name and the paths of its products."""

    name: str
    catalogue: str  # the RMTable as ECSV
    cube: str  # the cube store (its centre and beams)
    summary: str = ""  # the QA summary (qa/summary.json: every stage's QA, the Faraday and catalogue ones too)


def angular_separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance (deg) between positions in degrees (astropy's Vincenty formula)."""
    from astropy.coordinates import angular_separation

    return np.rad2deg(angular_separation(*(np.deg2rad(np.asarray(v, dtype=np.float64))
                                           for v in (ra1, dec1, ra2, dec2))))


def field_centre_deg(cube_store) -> tuple[float, float]:
    """(RA, Dec) of a field's phase centre (deg), from its cube's WCS reference."""
    wcs = open_store(cube_store, "cube").attrs["wcs"]
    return float(wcs["CRVAL1"]), float(wcs["CRVAL2"])


def match_groups(ra, dec, field_index, radius_deg) -> np.ndarray:
    """A group number per row: rows of different fields within ``radius_deg`` (per row; a pair
    matches within the larger of its two) are one group, transitively (friends of friends). Rows of
    the same field are never merged: the field's catalogue already separated them. Pairs come from
    astropy's k-d tree search (search_around_sky), so a survey of 10^5 sources is not 10^10 pairs."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord, search_around_sky

    n = len(ra)
    parent = np.arange(n)
    if n < 2:
        return parent
    radius_deg = np.broadcast_to(np.asarray(radius_deg, dtype=np.float64), (n,))
    field_index = np.asarray(field_index)
    coords = SkyCoord(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg)
    first, second, separation, _ = search_around_sky(coords, coords, seplimit=float(np.nanmax(radius_deg)) * u.deg)
    near = ((first < second) & (field_index[first] != field_index[second])
            & (separation.deg <= np.maximum(radius_deg[first], radius_deg[second])))

    def root(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for k, j in zip(first[near], second[near]):
        parent[root(j)] = root(k)
    return np.array([root(k) for k in range(n)])


def merge_catalogues(fields: list[FieldProducts], out_paths: dict[str, str | os.PathLike], *,
                     results_dir: str | os.PathLike = ".") -> dict:
    """The survey catalogue: every field's rows, a source seen by several fields kept once (the
    detection nearest its field centre), with ``field``, ``dataref`` and ``Nfields``. Written in
    each format of ``out_paths`` (fits, ecsv, votable, csv). Returns counts for the log and QA."""
    from astropy.table import Column, Table, vstack

    tables = []
    for index, field in enumerate(fields):
        try:
            table = Table.read(field.catalogue, format="ascii.ecsv")
        except FileNotFoundError:
            raise fail(field.catalogue, f"field {field.name}: catalogue not found") from None
        table.meta.clear()
        ra0, dec0 = field_centre_deg(field.cube)
        relative = os.path.relpath(field.catalogue, results_dir)
        n = len(table)
        table["field"] = Column([field.name] * n, dtype=str)
        table["dataref"] = Column([f"{relative}#{cat_id}" for cat_id in table["cat_id"]], dtype=str)
        table["cat_id"] = Column([f"{field.name}/{cat_id}" for cat_id in table["cat_id"]], dtype=str)
        table["centre_dist"] = Column(angular_separation_deg(ra0, dec0, table["ra"], table["dec"]), unit="deg")
        table["_field_index"] = np.full(n, index)
        tables.append(table)
    merged = vstack(tables, metadata_conflicts="silent") if tables else Table()
    if len(merged):
        group = match_groups(np.asarray(merged["ra"]), np.asarray(merged["dec"]), np.asarray(merged["_field_index"]),
                             np.asarray(merged["beam_maj"], dtype=np.float64))
        order = np.lexsort((-np.asarray(merged["snr_pol"]), np.asarray(merged["centre_dist"]), group))
        first = order[np.r_[True, group[order][1:] != group[order][:-1]]]
        # fields per group: the distinct (group, field) pairs, counted by group
        pairs = np.unique(np.column_stack([group, np.asarray(merged["_field_index"])]), axis=0)
        groups, seen_by = np.unique(pairs[:, 0], return_counts=True)
        kept = merged[np.sort(first)]
        kept["Nfields"] = seen_by[np.searchsorted(groups, group[np.sort(first)])].astype(np.int32)
    else:
        kept = merged
    if "_field_index" in kept.colnames:
        kept.remove_column("_field_index")
    kept.meta.update({"ORIGIN": "spectropol", "RMTVER": "1.3", "NFIELDS": len(fields),
                      "COMMENT": ["survey catalogue: the fields' RMTables, each source once (spectropol survey)"]})
    made = provenance({"catalogues": ", ".join(f.catalogue for f in fields)})
    for kind, path in out_paths.items():
        with atomic_path(path) as partial:
            with_provenance(kept, made, kind).write(partial, format=TABLE_FORMATS[kind])
    counts = {"fields": len(fields), "rows": int(len(merged)), "sources": int(len(kept)),
              "duplicates_removed": int(len(merged) - len(kept)),
              "per_field": {f.name: int(np.sum(kept["field"] == f.name)) if len(kept) else 0 for f in fields}}
    log.info("survey catalogue: %d sources from %d rows of %d fields (%d seen twice or more)", counts["sources"],
             counts["rows"], counts["fields"], counts["duplicates_removed"])
    return counts


def field_quality(field: FieldProducts, min_snr: float) -> dict:
    """One field's line of the survey QA: noise, beam, sensitivity, sources, failed and divergent
    channels, all from the field's QA summary."""
    summary = json.loads(Path(field.summary).read_text()) if field.summary else {}
    products = summary.get("products", {})
    cube = products.get("cube", {})
    rms = summary.get("median_rms", {})
    beam = cube.get("beam_bmaj_deg_range") or [np.nan, np.nan]
    fdf_noise = products.get("faraday_depth", {}).get("fdf_noise_median", np.nan)
    sources = products.get("catalogue", {}).get("sources", 0)
    ra0, dec0 = field_centre_deg(field.cube)
    return {
        "field": field.name, "ra_deg": ra0, "dec_deg": dec0, "channels": summary.get("channels"),
        "rms_qu_jy_beam": float(np.nanmean([rms.get("Q", np.nan), rms.get("U", np.nan)])),
        "rms_i_jy_beam": rms.get("I"), "beam_bmaj_arcsec": [b * 3600 for b in beam],
        "fdf_noise_jy_beam": fdf_noise,
        # the completeness proxy: the polarised intensity a source needs to be catalogued here
        "pi_limit_jy_beam": float(min_snr * fdf_noise),
        "sources": sources, "outlier_channels": len(summary.get("outliers", [])),
        "failed_jobs": len(summary.get("failed_jobs", [])), "diverged_channels": len(cube.get("diverged_channels", [])),
        "flagged_channels": len(cube.get("flagged_channels", [])),
    }


def survey_quality(fields: list[FieldProducts], out_json, out_plot, *, min_snr: float,
                   merged_catalogue=None) -> dict:
    """The survey's QA: a line per field (field_quality) and the fields that stand out (noise or
    sensitivity more than twice the survey's median, failed or divergent channels), as JSON and
    a figure."""
    from astropy.table import Table

    lines = [field_quality(f, min_snr) for f in fields]
    merge = {}
    if merged_catalogue is not None:
        merged = Table.read(merged_catalogue, format="ascii.ecsv")
        merge = {"sources": len(merged), "seen_by_several_fields": int(np.sum(merged["Nfields"] > 1))
                 if len(merged) else 0}
    median_limit = float(np.nanmedian([line["pi_limit_jy_beam"] for line in lines])) if lines else np.nan
    median_rms = float(np.nanmedian([line["rms_qu_jy_beam"] for line in lines])) if lines else np.nan
    for line in lines:
        reasons = []
        if line["rms_qu_jy_beam"] > 2 * median_rms:
            reasons.append("Q/U noise above twice the survey median")
        if line["pi_limit_jy_beam"] > 2 * median_limit:
            reasons.append("PI limit above twice the survey median")
        if line["failed_jobs"]:
            reasons.append(f"{line['failed_jobs']} failed jobs")
        if line["diverged_channels"]:
            reasons.append(f"{line['diverged_channels']} divergent CLEANs")
        line["attention"] = reasons
    document = {"kind": "survey", "fields": lines, "median_rms_qu_jy_beam": median_rms,
                "median_pi_limit_jy_beam": median_limit, "catalogue": merge,
                "provenance": provenance({"fields": ", ".join(f.name for f in fields)})}
    write_json(out_json, document)
    plot_survey_quality(lines, out_plot)
    return document


def plot_survey_quality(lines: list[dict], out_path) -> None:
    """Four panels, a bar per field: Q/U noise, PI limit, beam, sources; fields needing attention in red."""
    from ..plotting import pyplot

    plt = pyplot()
    names = [line["field"] for line in lines]
    colours = ["tab:red" if line["attention"] else "tab:blue" for line in lines]
    figure, axes = plt.subplots(4, 1, figsize=(max(6.0, 0.4 * len(names) + 3), 9), sharex=True)
    panels = (("rms_qu_jy_beam", "Q/U rms (mJy/beam)", 1e3), ("pi_limit_jy_beam", "PI limit (mJy/beam)", 1e3),
              ("beam_bmaj_arcsec", "beam major (arcsec)", 1.0), ("sources", "sources", 1.0))
    for axis, (key, label, scale) in zip(axes, panels):
        values = [np.nanmax(line[key]) if isinstance(line[key], list) else line[key] for line in lines]
        axis.bar(names, np.asarray(values, dtype=float) * scale, color=colours)
        axis.set_ylabel(label)
    axes[-1].tick_params(axis="x", rotation=90 if len(names) > 12 else 0)
    axes[0].set_title("survey QA by field (red: needs attention, see fields.json)")
    figure.tight_layout()
    with atomic_path(out_path) as partial:
        figure.savefig(partial, format="png", dpi=100)
    plt.close(figure)
