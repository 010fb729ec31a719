"""The catalogue stage: polarised sources found in the Faraday moment and peak polarised-intensity
maps (Farnes et al. 2018), measured from the cube and the FDF peaks, written as an RMTable
(Van Eck et al. 2023, ApJS 267, 28) in VOTable, FITS, ECSV and CSV, with a sky model of the
detections.

Detection (kernels/sources.py): islands of pixels above k times a local rms, where background and
rms come from a mesh of boxes with sigma clipping (robust to the sources), interpolated over the
image.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from ..constants import SPEED_OF_LIGHT
from ..io.cube import pixel_spectra
from ..io.stores import atomic_path, open_dataset
from ..kernels.sources import Island, find_islands, merge_islands, spectral_index
from ..options import CatalogueOptions
from ..qa.documents import write_qa
from .faraday import PEAK_MAPS

log = logging.getLogger(__name__)

# RMTable columns (Van Eck et al. 2023) this catalogue fills, with their units.
RMTABLE_COLUMNS = {
    "cat_id": None, "ra": "deg", "dec": "deg", "l": "deg", "b": "deg", "pos_err": "deg",
    "rm": "rad/m2", "rm_err": "rad/m2", "rm_method": None, "complex_flag": None, "complex_test": None,
    "rm_width": "rad/m2", "polint": "Jy/beam", "polint_err": "Jy/beam", "pol_bias": None, "flux_type": None,
    "fracpol": None, "fracpol_err": None, "polangle": "deg", "polangle_err": "deg",
    "derot_polangle": "deg", "derot_polangle_err": "deg", "reffreq_pol": "Hz",
    "stokesI": "Jy/beam", "stokesI_err": "Jy/beam", "spectral_index": None, "spectral_index_err": None,
    "reffreq_I": "Hz",
    "beam_maj": "deg", "beam_min": "deg", "beam_pa": "deg", "rmsf_fwhm": "rad/m2", "noise_chan": "Jy/beam",
    "minfreq": "Hz", "maxfreq": "Hz", "channel_width": "Hz", "Nchan": None, "telescope": None,
    "snr_pol": None, "fdf_noise": "Jy/beam", "flag_low_snr": None, "flag_phi_edge": None, "flag_blended": None,
    "x_pix": None, "y_pix": None,
}
# The products of the stage: table formats (astropy writers) and the sky model.
TABLE_FORMATS = {"votable": "votable", "fits": "fits", "ecsv": "ascii.ecsv", "csv": "ascii.csv"}
CATALOGUE_FILES = {"votable": "catalogue.vot", "fits": "catalogue.fits", "ecsv": "catalogue.ecsv",
                   "csv": "catalogue.csv", "skymodel": "skymodel.yaml"}


@dataclasses.dataclass
class CatalogueResult:
    """The catalogue stage's QA figures."""

    sources: int
    islands: int
    threshold_sigma: float
    min_snr: float
    flagged_blended: int
    flagged_phi_edge: int


def find_candidates(moments, peaks, options: CatalogueOptions, beam_px: float) -> list[Island]:
    """Islands in the debiased peak-PI map, the P-mean moment map and the band-mean Stokes I map
    (the I-mean moment map; for faint PI at bright I), merged within a beam; the peak-PI positions win."""
    p_mean = moments["moments"].sel(quantity="P", moment="mean").values
    peak_pi = peaks["peak_pi_debiased"].values
    band_i = moments["moments"].sel(quantity="I", moment="mean").values
    return merge_islands([find_islands(m, options.threshold_sigma, options.box_px) for m in (peak_pi, p_mean, band_i)],
                         beam_px)


def measure_sources(cube, peaks, islands: list[Island], options: CatalogueOptions, *, beam_deg: float, beam_px: float,
                    telescope: str = "", cube_store: str | os.PathLike) -> list[dict]:
    """One RMTable row per island whose FDF peak SNR reaches ``min_snr``, measured at its peak pixel."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    from ..io.wcs import to_fits_header

    wcs = WCS(to_fits_header(cube.attrs["wcs"])).celestial
    freqs = cube["freq"].values
    grid = peaks.attrs["faraday_grid"]
    lambda0_sq = float(peaks.attrs["lambda0_sq"])
    reffreq_pol = float(SPEED_OF_LIGHT / np.sqrt(lambda0_sq))
    rms_i = cube["rms"].sel(stokes="I").values
    beam_min, beam_pa = (float(np.nanmedian(cube[k].values)) for k in ("bmin", "bpa"))
    noise_chan = float(np.nanmedian(cube["rms"].sel(stokes=["Q", "U"]).values))
    maps = {name: peaks[name].values for name in PEAK_MAPS}
    ordered = sorted(islands, key=lambda i: -i.snr)
    kept = [(number, island) for number, island in enumerate(ordered)
            if np.isfinite(maps["snr"][island.peak_y, island.peak_x])
            and maps["snr"][island.peak_y, island.peak_x] >= options.min_snr]
    spectra = pixel_spectra(cube_store, "I", [(island.peak_y, island.peak_x) for _, island in kept])
    rows = []
    for (number, island), spectrum in zip(kept, spectra):
        y, x = island.peak_y, island.peak_x
        at = {name: float(values[y, x]) for name, values in maps.items()}
        s0, s0_err, alpha, alpha_err = spectral_index(freqs, spectrum, rms_i, reffreq_pol)
        world = wcs.wcs_pix2world([[island.x, island.y]], 0)[0]
        if not np.all(np.isfinite(world)):
            # beyond the horizon of the projection: no direction, so no source (the maps are NaN
            # there; this guards against an island that reaches the edge of the sky)
            log.warning("island at pixel (%.1f, %.1f) has no sky position; not catalogued", island.x, island.y)
            continue
        coordinate = SkyCoord(*world, unit="deg", frame="fk5")
        pos_err = beam_deg / (2.0 * max(at["snr"], 1e-9))  # Condon (1997)-style, per coordinate
        close = [o for o in islands if o is not island and np.hypot(o.y - island.y, o.x - island.x) < 2 * beam_px]
        phi_edge = abs(at["peak_phi"]) > grid["phi_max"] - grid["rmsf_fwhm"]
        fracpol = at["peak_pi_debiased"] / s0 if s0 > 0 else float("nan")
        fracpol_err = (fracpol * np.hypot(at["fdf_noise"] / at["peak_pi_debiased"], s0_err / s0) if s0 > 0
                       else float("nan"))
        rows.append({
            "cat_id": f"SP{number:05d}", "ra": coordinate.ra.deg, "dec": coordinate.dec.deg,
            "l": coordinate.galactic.l.deg, "b": coordinate.galactic.b.deg, "pos_err": pos_err,
            "rm": at["peak_phi"], "rm_err": at["peak_phi_err"], "rm_method": "RM Synthesis - Pol. Int",
            "complex_flag": "Y" if at["cc_moment2"] > 0.5 * grid["rmsf_fwhm"] else "N",
            "complex_test": "second moment of clean components",
            "rm_width": at["cc_moment2"], "polint": at["peak_pi_debiased"], "polint_err": at["fdf_noise"],
            "pol_bias": "2012PASA...29..214G", "flux_type": "Peak",
            "fracpol": fracpol, "fracpol_err": fracpol_err,
            "polangle": (at["pol_angle0_deg"] + np.rad2deg(at["peak_phi"] * lambda0_sq)) % 180.0,
            "polangle_err": at["pol_angle0_err_deg"],
            "derot_polangle": at["pol_angle0_deg"], "derot_polangle_err": at["pol_angle0_err_deg"],
            "reffreq_pol": reffreq_pol,
            "stokesI": s0, "stokesI_err": s0_err, "spectral_index": alpha, "spectral_index_err": alpha_err,
            "reffreq_I": reffreq_pol,
            "beam_maj": beam_deg, "beam_min": beam_min, "beam_pa": beam_pa,
            "rmsf_fwhm": grid["rmsf_fwhm"], "noise_chan": noise_chan,
            "minfreq": float(freqs.min()), "maxfreq": float(freqs.max()),
            "channel_width": float(np.median(np.diff(freqs))) if len(freqs) > 1 else float("nan"),
            "Nchan": int(np.isfinite(rms_i).sum()), "telescope": telescope,
            "snr_pol": at["snr"], "fdf_noise": at["fdf_noise"], "flag_low_snr": bool(at["snr"] < 10.0),
            "flag_phi_edge": bool(phi_edge), "flag_blended": bool(island.maxima > 1 or close),
            "x_pix": island.x, "y_pix": island.y,
        })
    return rows


def rmtable(rows: list[dict], options: CatalogueOptions):
    """The rows as an astropy Table with RMTable column names and units."""
    from astropy import units as u
    from astropy.table import Table

    table = Table(rows=rows, names=list(RMTABLE_COLUMNS)) if rows else Table(names=list(RMTABLE_COLUMNS))
    for name, unit in RMTABLE_COLUMNS.items():
        if unit:
            table[name].unit = u.Unit(unit)
    # FITS-length keys, so the FITS table carries them without HIERARCH cards
    table.meta.update({"ORIGIN": "spectropol", "RMTVER": "1.1", "DETSIG": options.threshold_sigma,
                       "MINSNR": options.min_snr,
                       "COMMENT": ["polarised source catalogue, RMTable columns (Van Eck et al. 2023)"]})
    return table


def sky_model(rows: list[dict], wcs: dict, reference_hz: float) -> dict:
    """The detections in the sky-model format spectropol simulate reads (resources/skymodels)."""
    ra0, dec0 = np.deg2rad(wcs["CRVAL1"]), np.deg2rad(wcs["CRVAL2"])
    sources = []
    for row in rows:
        ra, dec = np.deg2rad(row["ra"]), np.deg2rad(row["dec"])
        l = np.cos(dec) * np.sin(ra - ra0)
        m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
        sources.append({"name": row["cat_id"], "offset_arcsec": [float(np.rad2deg(l) * 3600),
                                                                 float(np.rad2deg(m) * 3600)],
                        "stokes_i_jy": row["stokesI"], "spectral_index": row["spectral_index"],
                        "pol_fraction": row["fracpol"], "rm_rad_m2": row["rm"], "pol_angle_deg": row["derot_polangle"]})
    return {"reference_frequency_hz": reference_hz, "sources": sources}


def build_catalogue(cube_store, moments_store, peaks_store, out_paths: dict[str, str | os.PathLike], qa_path,
                    options: CatalogueOptions = CatalogueOptions(), *, telescope: str = "",
                    rule: str = "spectropol") -> CatalogueResult:
    """Find and measure polarised sources; write the RMTable (votable, fits, ecsv, csv) and a sky model
    (skymodel, the YAML format of resources/skymodels)."""
    import yaml

    cube = open_dataset(cube_store, "cube", dask=False)
    moments = open_dataset(moments_store, "moments", dask=False)
    peaks = open_dataset(peaks_store, "Faraday peak", dask=False)
    cell_deg = abs(cube.attrs["wcs"]["CDELT2"])
    beam_deg = float(np.nanmedian(cube["bmaj"].values)) if np.isfinite(cube["bmaj"].values).any() else 3 * cell_deg
    beam_px = beam_deg / cell_deg
    islands = find_candidates(moments, peaks, options, beam_px)
    rows = measure_sources(cube, peaks, islands, options, beam_deg=beam_deg, beam_px=beam_px, telescope=telescope,
                           cube_store=cube_store)
    table = rmtable(rows, options)
    for kind, path in out_paths.items():
        with atomic_path(path) as partial:
            if kind == "skymodel":
                reference_hz = float(SPEED_OF_LIGHT / np.sqrt(float(peaks.attrs["lambda0_sq"])))
                partial.write_text("# Sky model of the detected polarised components (spectropol catalogue)\n"
                                   + yaml.safe_dump(sky_model(rows, cube.attrs["wcs"], reference_hz), sort_keys=False))
            else:
                table.write(partial, format=TABLE_FORMATS[kind])
    result = CatalogueResult(sources=len(rows), islands=len(islands), threshold_sigma=options.threshold_sigma,
                             min_snr=options.min_snr, flagged_blended=int(sum(r["flag_blended"] for r in rows)),
                             flagged_phi_edge=int(sum(r["flag_phi_edge"] for r in rows)))
    write_qa(qa_path, "catalogue", result, rule)
    log.info("catalogue: %d polarised sources from %d islands", len(rows), len(islands))
    return result
