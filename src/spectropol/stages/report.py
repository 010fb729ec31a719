"""The report stage: figures for the Snakemake report (maps, the RMSF, FDF spectra of the brightest
sources) as PNG files (matplotlib, no display needed). The per-channel QA figure is the qa stage's."""

from __future__ import annotations

import os

import numpy as np

from ..io.stores import atomic_path, open_store


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as partial:
        fig.savefig(partial, format="png", dpi=90, bbox_inches="tight")


def field_figures(moments_store, peaks_store, out: dict[str, str | os.PathLike]) -> None:
    """The figures that need no catalogue, made while it is being made: moments, the Faraday
    moment maps; peak_rm, Faraday depth of the peak where PI > 8 sigma; rmsf, the RMSF amplitude,
    real and imaginary parts."""
    plt = _figure()
    moments = open_store(moments_store, "moments")
    peaks = open_store(peaks_store, "Faraday peak")
    quantities, kinds = (list(moments[name][...]) for name in ("quantity", "moment"))
    maps = moments["moments"][...]

    fig, axes = plt.subplots(len(quantities), len(kinds), figsize=(14, 13))
    for i, quantity in enumerate(quantities):
        for j, moment in enumerate(kinds):
            shown = axes[i, j].imshow(maps[i, j], origin="lower", cmap="viridis")
            axes[i, j].set_title(f"{quantity} {moment}")
            fig.colorbar(shown, ax=axes[i, j], shrink=0.7)
    _save(fig, out["moments"])
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(6, 5))
    rm = np.where(peaks["snr"][...] > 8, peaks["peak_phi"][...], np.nan)
    shown = axis.imshow(rm, origin="lower", cmap="coolwarm")
    axis.set_title("Faraday depth of the FDF peak (rad/m$^2$), SNR > 8")
    fig.colorbar(shown, ax=axis)
    _save(fig, out["peak_rm"])
    plt.close(fig)

    fig, axis = plt.subplots(figsize=(7, 4))
    phi, rmsf = peaks["phi_rmsf"][...], peaks["rmsf"][...]
    for values, label in ((np.abs(rmsf), "|R|"), (rmsf.real, "real"), (rmsf.imag, "imaginary")):
        axis.plot(phi, values, label=label)
    axis.set_xlabel("Faraday depth (rad/m$^2$)")
    axis.set_title(f"RMSF, FWHM {peaks.attrs['faraday_grid']['rmsf_fwhm']:.3g} rad/m$^2$")
    axis.legend()
    _save(fig, out["rmsf"])
    plt.close(fig)


def source_figures(moments_store, peaks_store, candidates_store, catalogue_path, out: dict[str, str | os.PathLike],
                   brightest: int = 4) -> None:
    """The figures of the catalogued sources: maps, Stokes I (band mean, the I-mean moment) and
    peak polarised intensity with the catalogue marked; spectra, dirty and clean |FDF| of the
    brightest sources (from the candidates' spectra the Faraday stage keeps)."""
    from astropy.table import Table

    from .faraday import candidate_spectrum

    plt = _figure()
    moments = open_store(moments_store, "moments")
    peaks = open_store(peaks_store, "Faraday peak")
    catalogue = Table.read(catalogue_path, format="ascii.ecsv")
    quantities, kinds = (list(moments[name][...]) for name in ("quantity", "moment"))
    stokes_i = moments["moments"][quantities.index("I"), kinds.index("mean")]

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for axis, (image, title) in zip(axes, ((stokes_i, "Stokes I, band mean (Jy/beam)"),
                                           (peaks["peak_pi_debiased"][...], "peak polarised intensity (Jy/beam)"))):
        shown = axis.imshow(image, origin="lower", cmap="inferno")
        axis.scatter(catalogue["x_pix"], catalogue["y_pix"], s=80, facecolors="none", edgecolors="cyan")
        axis.set_title(title)
        fig.colorbar(shown, ax=axis, shrink=0.8)
    _save(fig, out["maps"])
    plt.close(fig)

    catalogue.sort("polint", reverse=True)
    candidates = open_store(candidates_store, "Faraday candidate")
    count = max(1, min(brightest, len(catalogue)))
    fig, axes = plt.subplots(count, 1, figsize=(7, 2.5 * count), squeeze=False)
    for axis, row in zip(axes[:, 0], catalogue[:count]):
        for variable, label in (("fdf_dirty", "dirty"), ("fdf_clean", "clean")):
            # the source's position is a centroid: its brightest pixel is a candidate within a pixel or two
            spectrum = candidate_spectrum(candidates, row["y_pix"], row["x_pix"], variable, within_px=2.0)
            if spectrum is not None:
                axis.plot(candidates["phi"][...], np.abs(spectrum), label=label)
        axis.axvline(row["rm"], color="grey", lw=0.8)
        axis.set_title(f"{row['cat_id']}: RM {row['rm']:.2f} +- {row['rm_err']:.2f} rad/m$^2$")
        axis.legend()
    axes[-1, 0].set_xlabel("Faraday depth (rad/m$^2$)")
    fig.tight_layout()
    _save(fig, out["spectra"])
    plt.close(fig)
