"""The report stage: figures for the Snakemake report (maps, the RMSF, a page per bright source) as
PNG files. Every sky map is on RA/Dec axes with the restoring beam and a colour bar in its unit;
measured values are printed to the digits their errors allow (plotting.py). The per-channel QA
figure is the qa stage's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..constants import SPEED_OF_LIGHT
from ..io.stores import atomic_path, open_store, software_versions, workflow_commit
from ..io.wcs import to_fits_header
from ..plotting import format_measurement, pyplot, show_cutout, show_map, sky_axes

MOMENT_UNITS = {"mean": "Jy/beam", "std": "Jy/beam", "skewness": "dimensionless", "kurtosis": "dimensionless"}
RM_UNIT = "rad m$^{-2}$"


def celestial_wcs(header: dict):
    """An astropy WCS of the two celestial axes of a store's ``wcs`` attribute (as the catalogue
    builds it)."""
    from astropy.wcs import WCS

    return WCS(to_fits_header(header)).celestial


def cube_beam(cube_store) -> tuple[float, float, float] | None:
    """The restoring beam to draw on band-averaged maps: the channel beam of median major axis
    (bmaj, bmin, bpa in deg); None where the cube has none (FITS input without BMAJ)."""
    group = open_store(cube_store, "cube")
    if "bmaj" not in group:
        return None
    bmaj, bmin, bpa = (np.asarray(group[name][...], dtype=np.float64) for name in ("bmaj", "bmin", "bpa"))
    good = np.flatnonzero(np.isfinite(bmaj) & (bmaj > 0))
    if not good.size:
        return None
    median = good[np.argsort(bmaj[good])[len(good) // 2]]
    return float(bmaj[median]), float(bmin[median]), float(bpa[median])


def _save(fig, path) -> None:
    # margins are set per figure: bbox_inches="tight" draws every figure twice (0.5 s of 3 s here)
    with atomic_path(path) as partial:
        fig.savefig(partial, format="png", dpi=90)


def field_figures(moments_store, peaks_store, out: dict[str, str | os.PathLike], cube_store=None) -> None:
    """The figures that need no catalogue, made while it is being made: moments, the Faraday
    moment maps; peak_rm, Faraday depth of the peak where its SNR > 8; rmsf, the RMSF amplitude,
    real and imaginary parts."""
    plt = pyplot()
    moments = open_store(moments_store, "moments")
    peaks = open_store(peaks_store, "Faraday peak")
    wcs = celestial_wcs(dict(peaks.attrs["wcs"]))
    beam = cube_beam(cube_store) if cube_store is not None else None
    quantities, kinds = (list(moments[name][...]) for name in ("quantity", "moment"))
    maps = moments["moments"][...]

    fig = plt.figure(figsize=(4.4 * len(kinds), 4.0 * len(quantities)))
    for i, quantity in enumerate(quantities):
        for j, moment in enumerate(kinds):
            axis = sky_axes(fig, (len(quantities), len(kinds), i * len(kinds) + j + 1), wcs, f"{quantity} {moment}")
            unit = MOMENT_UNITS.get(moment, "")
            show_map(fig, axis, maps[i, j], unit, cmap="viridis", beam=beam,
                     stretch="linear" if unit == "dimensionless" else "asinh")
            if i < len(quantities) - 1:  # RA labelled on the bottom row, Dec on the left column only
                axis.coords[0].set_ticklabel_visible(False)
                axis.coords[0].set_axislabel("")
            if j > 0:
                axis.coords[1].set_ticklabel_visible(False)
                axis.coords[1].set_axislabel("")
    fig.suptitle("Faraday moments across frequency (Farnes et al. 2018)", y=0.995)
    fig.tight_layout()
    _save(fig, out["moments"])
    plt.close(fig)

    fig = plt.figure(figsize=(7, 6))
    axis = sky_axes(fig, (1, 1, 1), wcs, "Faraday depth of the FDF peak where its SNR > 8")
    rm = np.where(peaks["snr"][...] > 8, peaks["peak_phi"][...], np.nan)
    show_map(fig, axis, rm, f"Faraday depth ({RM_UNIT})", cmap="coolwarm", beam=beam, stretch="symmetric")
    fig.subplots_adjust(left=0.18, right=0.92, top=0.9, bottom=0.12)
    _save(fig, out["peak_rm"])
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(7, 4))
    phi, rmsf = peaks["phi_rmsf"][...], peaks["rmsf"][...]
    for values, label in ((np.abs(rmsf), "|R|"), (rmsf.real, "real"), (rmsf.imag, "imaginary")):
        axis.plot(phi, values, label=label)
    axis.set_xlabel(f"Faraday depth ({RM_UNIT})")
    axis.set_ylabel("RMSF (1 at zero depth)")
    axis.set_title(f"RMSF, FWHM {peaks.attrs['faraday_grid']['rmsf_fwhm']:.3g} {RM_UNIT}")
    axis.legend()
    fig.tight_layout()
    _save(fig, out["rmsf"])
    plt.close(fig)


def source_figures(moments_store, peaks_store, candidates_store, catalogue_path, out: dict[str, str | os.PathLike],
                   brightest: int = 4, cube_store=None, spectra_path=None) -> None:
    """The figures of the catalogued sources. maps: Stokes I (the I-mean moment) and peak polarised
    intensity with the catalogue marked by its IDs. spectra: a row per source, the ``brightest`` in
    polarised intensity: I and PI cut-outs (offsets in arcsec), the Q, U and PI spectra the catalogue
    measured (``spectra_path``, its spectra.fits) against lambda^2 with its fitted Stokes I model,
    the dirty and clean |FDF| with the RMSF at the peak and the clean components, and its RM, PI, p
    and angle with their errors."""
    from astropy.table import Table

    from .faraday import nearest_candidate

    plt = pyplot()
    moments = open_store(moments_store, "moments")
    peaks = open_store(peaks_store, "Faraday peak")
    wcs = celestial_wcs(dict(peaks.attrs["wcs"]))
    beam = cube_beam(cube_store) if cube_store is not None else None
    catalogue = Table.read(catalogue_path, format="ascii.ecsv")
    quantities, kinds = (list(moments[name][...]) for name in ("quantity", "moment"))
    stokes_i = moments["moments"][quantities.index("I"), kinds.index("mean")]
    peak_pi = peaks["peak_pi_debiased"][...]

    fig = plt.figure(figsize=(14, 6))
    for index, (image, title) in enumerate(((stokes_i, "Stokes I, band mean"),
                                            (peak_pi, "peak polarised intensity (debiased)"))):
        axis = sky_axes(fig, (1, 2, index + 1), wcs, f"{title}: {len(catalogue)} catalogued sources")
        show_map(fig, axis, image, "Jy/beam", beam=beam)
        axis.scatter(catalogue["x_pix"], catalogue["y_pix"], s=120, facecolors="none", edgecolors="cyan", lw=1.0)
        for row in catalogue:
            axis.annotate(str(row["cat_id"]), (float(row["x_pix"]), float(row["y_pix"])), xytext=(6, 6),
                          textcoords="offset points", color="cyan", fontsize=7)
    fig.subplots_adjust(left=0.07, right=0.95, top=0.9, bottom=0.1, wspace=0.35)
    _save(fig, out["maps"])
    plt.close(fig)

    catalogue.sort("polint", reverse=True)
    rows = catalogue[:max(1, min(brightest, len(catalogue)))] if len(catalogue) else catalogue
    candidates = open_store(candidates_store, "Faraday candidate")
    phi = candidates["phi"][...]
    fwhm = float(peaks.attrs["faraday_grid"]["rmsf_fwhm"])
    phi_rmsf, rmsf = peaks["phi_rmsf"][...], peaks["rmsf"][...]
    from .catalogue import read_spectra

    freqs, measured = read_spectra(spectra_path) if spectra_path is not None else (None, {})
    nrow = max(1, len(rows))
    fig = plt.figure(figsize=(18, 3.6 * nrow))
    grid = fig.add_gridspec(nrow, 4, width_ratios=(1, 1, 1.6, 1.6))
    half = 12
    cell_arcsec = 3600.0 * abs(float(peaks.attrs["wcs"]["CDELT2"]))
    for n, row in enumerate(rows):
        y, x = int(round(float(row["y_pix"]))), int(round(float(row["x_pix"])))
        box = (slice(max(y - half, 0), y + half + 1), slice(max(x - half, 0), x + half + 1))
        for column, (image, name) in enumerate(((stokes_i, "I"), (peak_pi, "PI"))):
            # offsets from the source in arcsec, east to the left (plain axes: WCSAxes' tick layout
            # made this figure three times slower, and over a cut-out the sky is flat)
            axis = fig.add_subplot(grid[n, column])
            axis.set_title(f"{row['cat_id']}: {name}", fontsize=10)
            show_cutout(fig, axis, image[box], cell_arcsec, (box[1].start - x, box[0].start - y), beam)
        spectra_axis = fig.add_subplot(grid[n, 2])
        spectrum = measured.get(str(row["cat_id"]))
        if spectrum is not None:
            lambda_sq = (SPEED_OF_LIGHT / freqs) ** 2
            q, u, sigma = spectrum["Q"], spectrum["U"], spectrum.get("sigma_QU")
            for values, label in ((q, "Q"), (u, "U"), (np.hypot(q, u), "PI")):
                spectra_axis.errorbar(lambda_sq, values, yerr=sigma, fmt=".", ms=3, lw=0.5, label=label)
            spectra_axis.set_ylabel("Q, U, PI (Jy)")
            model_axis = spectra_axis.twinx()
            model_axis.plot(lambda_sq, spectrum["I"], ".", ms=2, color="0.6", label="I")
            order = int(row["stokesI_model_order"]) if "stokesI_model_order" in row.colnames else -1
            model_axis.plot(lambda_sq, spectrum["I_model"], color="k", lw=1,
                            label=f"I model (order {order})" if order >= 0 else "I model (none fitted)")
            model_axis.set_ylabel("Stokes I (Jy)")
            model_axis.legend(loc="upper right", fontsize=7)
            spectra_axis.legend(loc="upper left", fontsize=7)
        spectra_axis.set_xlabel(r"$\lambda^2$ (m$^2$)")
        spectra_axis.set_title(f"p = {format_measurement(row['fracpol'], row['fracpol_err'])}, "
                               f"angle {format_measurement(row['polangle'], row['polangle_err'], 'deg')}, "
                               f"alpha {format_measurement(row['spectral_index'], row['spectral_index_err'])}",
                               fontsize=9)
        fdf_axis = fig.add_subplot(grid[n, 3])
        peak = float("nan")
        # the source's position is a fit: its brightest pixel is a candidate within a pixel or two
        index = nearest_candidate(candidates, float(row["y_pix"]), float(row["x_pix"]), within_px=2.0)
        kept = {name: np.asarray(candidates[name][index]) for name in ("fdf_dirty", "fdf_clean", "clean_components")
                if index is not None and name in candidates}
        for variable, label in (("fdf_dirty", "dirty"), ("fdf_clean", "clean")):
            if variable in kept:
                fdf_axis.plot(phi, np.abs(kept[variable]), label=f"|FDF| {label}")
                peak = np.nanmax([peak, float(np.abs(kept[variable]).max())])
        if np.any(kept.get("clean_components", 0)):
            fdf_axis.vlines(phi, 0, np.abs(kept["clean_components"]), color="k", lw=1.0, label="clean components")
        if np.isfinite(peak):
            fdf_axis.plot(phi_rmsf + float(row["rm"]), peak * np.abs(rmsf), ":", color="grey", lw=1,
                          label=f"RMSF (FWHM {fwhm:.3g})")
        fdf_axis.set_xlim(phi[0], phi[-1])
        fdf_axis.set_xlabel(f"Faraday depth ({RM_UNIT})")
        fdf_axis.set_ylabel("|F| (Jy/beam/RMSF)")
        fdf_axis.set_title(f"RM {format_measurement(row['rm'], row['rm_err'], RM_UNIT)}, "
                           f"PI {format_measurement(row['polint'] * 1e3, row['polint_err'] * 1e3, 'mJy')}",
                           fontsize=9)
        fdf_axis.legend(fontsize=7)
    fig.subplots_adjust(left=0.04, right=0.97, top=0.97, bottom=0.04, wspace=0.45, hspace=0.45)
    _save(fig, out["spectra"])
    plt.close(fig)


# -- the catalogue as a table, and the run's provenance -------------------------------------------

# (heading, value column, error column or None, unit) of the catalogue table
TABLE_COLUMNS = (
    ("ID", "cat_id", None, ""), ("RA (deg)", "ra", None, ""), ("Dec (deg)", "dec", None, ""),
    ("I (mJy)", "stokesI", "stokesI_err", "mJy"), ("alpha", "spectral_index", "spectral_index_err", ""),
    ("PI (mJy)", "polint", "polint_err", "mJy"), ("p", "fracpol", "fracpol_err", ""),
    ("RM (rad/m2)", "rm", "rm_err", ""), ("angle0 (deg)", "derot_polangle", "derot_polangle_err", ""),
    ("SNR", "snr_pol", None, ""), ("V/I", "v_over_i", None, ""), ("PB response", "pb_response", None, ""),
    ("complex", "complex_flag", None, ""), ("Ncomp", "Ncomp", None, ""), ("leakage", "leakage_flag", None, ""),
    ("flux type", "flux_type", None, ""),
)
SORT_SCRIPT = """
document.querySelectorAll("th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var ascending = th.dataset.order !== "ascending";
    th.dataset.order = ascending ? "ascending" : "descending";
    var rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def catalogue_table(catalogue_path, out_path) -> int:
    """The catalogue as one self-contained HTML page: a table sortable by any column (click its
    heading), values with their errors to the digits the errors allow; returns the row count."""
    import html

    from astropy.table import Table

    catalogue = Table.read(catalogue_path, format="ascii.ecsv")
    catalogue.sort("polint", reverse=True)
    present = [c for c in TABLE_COLUMNS if c[1] in catalogue.colnames]
    head = "".join(f"<th title='click to sort'>{html.escape(name)}</th>" for name, *_ in present)
    body = []
    for row in catalogue:
        cells = []
        for _, value_name, error_name, unit in present:
            value = row[value_name]
            scale = 1e3 if unit == "mJy" else 1.0
            if isinstance(value, (str, np.str_)) or isinstance(value, (bool, np.bool_)):
                text = sort = str(value)
            elif error_name and error_name in catalogue.colnames:
                text = format_measurement(float(value) * scale, float(row[error_name]) * scale)
                sort = repr(float(value))
            elif value_name in ("ra", "dec"):
                text, sort = f"{float(value):.5f}", repr(float(value))
            else:
                number = float(value)
                text, sort = ("-" if not np.isfinite(number) else f"{number:.4g}"), repr(number)
            cells.append(f"<td data-value='{html.escape(sort, quote=True)}'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>spectropol catalogue</title><style>"
            "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
            "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}th{cursor:pointer;background:#eee}"
            "</style></head><body>"
            f"<p>{len(catalogue)} polarised sources, brightest in polarised intensity first; click a heading to "
            "sort. Every column of the RMTable standard is in results/catalogue/ (VOTable, FITS, ECSV, CSV).</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<script>{SORT_SCRIPT}</script></body></html>")
    with atomic_path(out_path) as partial:
        Path(partial).write_text(page)
    return len(catalogue)


def provenance_page(config: dict, workflow_dir, out_path, summary_path=None) -> dict:
    """The run's provenance as an HTML page: software versions (installed package metadata), the
    workflow's git commit, the machine, and the configuration as YAML; with ``summary_path`` also
    the versions and commit as a reStructuredText table, which the report's front page includes.
    Returns what it shows."""
    import html
    import platform

    import yaml

    versions = software_versions()
    facts = {"workflow commit": workflow_commit(str(workflow_dir)), "python": platform.python_version(),
             "platform": platform.platform()}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in (facts | versions).items())
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>spectropol provenance</title><style>"
            "body{font-family:sans-serif;font-size:13px}th{text-align:left;padding-right:1em}</style></head><body>"
            f"<h3>Software</h3><table>{rows}</table><h3>Configuration</h3>"
            f"<pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre></body></html>")
    with atomic_path(out_path) as partial:
        Path(partial).write_text(page)
    if summary_path is not None:
        shown = {"workflow commit": facts["workflow commit"]} | {k: v for k, v in versions.items()
                                                                 if v != "not installed"}
        width = max(len(k) for k in shown), max(len(str(v)) for v in shown.values())
        rule = f"{'=' * width[0]} {'=' * width[1]}"
        lines = [rule, f"{'software':<{width[0]}} version", rule]
        lines += [f"{k:<{width[0]}} {v}" for k, v in shown.items()] + [rule]
        with atomic_path(summary_path) as partial:
            Path(partial).write_text("\n".join(lines) + "\n")
    return facts | versions
