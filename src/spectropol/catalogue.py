"""The catalogue stage: polarised sources found in the Faraday moment and peak polarised-intensity
maps (Farnes et al. 2018), measured from the cube and the FDF peaks, written as an RMTable
(Van Eck et al. 2023, ApJS 267, 28) in VOTable, FITS and CSV, with a sky model of the detections.

Detection: islands of pixels above k times a local rms, where background and rms come from a mesh
of boxes with sigma clipping (robust to the sources), interpolated over the image.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
from scipy import ndimage

from .products import atomic_path, open_dataset, write_qa

log = logging.getLogger(__name__)


def background_and_rms(image: np.ndarray, box: int = 32, clip: float = 3.0, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Background and rms maps from sigma-clipped medians and MADs in boxes, interpolated linearly."""
    ny, nx = image.shape
    by, bx = max(1, ny // box), max(1, nx // box)
    background = np.full((by, bx), np.nan)
    rms = np.full((by, bx), np.nan)
    for j in range(by):
        for i in range(bx):
            values = image[j * ny // by : (j + 1) * ny // by, i * nx // bx : (i + 1) * nx // bx]
            values = values[np.isfinite(values)]
            for _ in range(iterations):
                if values.size < 8:
                    break
                centre = np.median(values)
                spread = 1.4826 * np.median(np.abs(values - centre))
                keep = np.abs(values - centre) <= clip * spread
                if keep.all() or spread == 0:
                    break
                values = values[keep]
            if values.size:
                background[j, i] = np.median(values)
                rms[j, i] = 1.4826 * np.median(np.abs(values - background[j, i]))
    fill = lambda grid: np.where(np.isfinite(grid), grid, np.nanmedian(grid))
    zoom = (ny / by, nx / bx)
    return (ndimage.zoom(fill(background), zoom, order=1, mode="nearest")[:ny, :nx],
            ndimage.zoom(fill(rms), zoom, order=1, mode="nearest")[:ny, :nx])


@dataclasses.dataclass
class Island:
    y: float  # flux-weighted centroid (pixels)
    x: float
    peak_y: int
    peak_x: int
    snr: float
    npix: int
    maxima: int  # local maxima above the threshold: more than one suggests a blend


def find_islands(image: np.ndarray, threshold_sigma: float, box: int = 32) -> list[Island]:
    """Islands of pixels above threshold_sigma x the local rms (after subtracting the background)."""
    background, rms = background_and_rms(image, box)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = np.where(rms > 0, (image - background) / rms, 0.0)
    snr = np.nan_to_num(snr)
    labels, count = ndimage.label(snr > threshold_sigma)
    islands = []
    local_max = (snr == ndimage.maximum_filter(snr, size=3)) & (snr > threshold_sigma)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        member = labels[region] == index
        weights = np.where(member, image[region] - background[region], 0.0)
        yy, xx = np.nonzero(member)
        total = weights[yy, xx].sum()
        peak = np.argmax(np.where(member, snr[region], -np.inf))
        py, px = np.unravel_index(peak, member.shape)
        islands.append(Island(
            y=float((weights[yy, xx] * yy).sum() / total + region[0].start), x=float((weights[yy, xx] * xx).sum() / total + region[1].start),
            peak_y=int(py + region[0].start), peak_x=int(px + region[1].start), snr=float(snr[region][py, px]),
            npix=int(member.sum()), maxima=int((local_max[region] & member).sum()),
        ))
    return islands


def merge_islands(groups: list[list[Island]], radius_px: float) -> list[Island]:
    """One island per source found in any of the maps: later maps add only what is farther than
    radius_px from everything kept; the first map's positions win."""
    kept: list[Island] = []
    for islands in groups:
        for island in sorted(islands, key=lambda i: -i.snr):
            if all(np.hypot(island.y - k.y, island.x - k.x) > radius_px for k in kept):
                kept.append(island)
    return kept


def spectral_index(freqs: np.ndarray, flux: np.ndarray, sigma: np.ndarray, reference_hz: float) -> tuple[float, float, float, float]:
    """Power-law fit S = S0 (nu / nu0)^alpha by weighted least squares in log space: S0, error, alpha, error."""
    good = np.isfinite(flux) & (flux > 0) & np.isfinite(sigma) & (sigma > 0)
    if good.sum() < 2:
        return float("nan"), float("nan"), float("nan"), float("nan")
    x = np.log(freqs[good] / reference_hz)
    y = np.log(flux[good])
    w = (flux[good] / sigma[good]) ** 2  # var(log S) = (sigma / S)^2
    design = np.column_stack([np.ones_like(x), x])
    normal = design.T @ (w[:, None] * design)
    coefficients = np.linalg.solve(normal, design.T @ (w * y))
    covariance = np.linalg.inv(normal)
    s0 = float(np.exp(coefficients[0]))
    return s0, float(s0 * np.sqrt(covariance[0, 0])), float(coefficients[1]), float(np.sqrt(covariance[1, 1]))


# RMTable columns (Van Eck et al. 2023) this catalogue fills, with their units.
RMTABLE_COLUMNS = {
    "cat_id": None, "ra": "deg", "dec": "deg", "l": "deg", "b": "deg", "pos_err": "deg",
    "rm": "rad/m2", "rm_err": "rad/m2", "rm_method": None, "complex_flag": None, "complex_test": None,
    "rm_width": "rad/m2", "polint": "Jy/beam", "polint_err": "Jy/beam", "pol_bias": None, "flux_type": None,
    "fracpol": None, "fracpol_err": None, "polangle": "deg", "polangle_err": "deg",
    "derot_polangle": "deg", "derot_polangle_err": "deg", "reffreq_pol": "Hz",
    "stokesI": "Jy/beam", "stokesI_err": "Jy/beam", "spectral_index": None, "spectral_index_err": None, "reffreq_I": "Hz",
    "beam_maj": "deg", "beam_min": "deg", "beam_pa": "deg", "rmsf_fwhm": "rad/m2", "noise_chan": "Jy/beam",
    "minfreq": "Hz", "maxfreq": "Hz", "channel_width": "Hz", "Nchan": None, "telescope": None,
    "snr_pol": None, "fdf_noise": "Jy/beam", "flag_low_snr": None, "flag_phi_edge": None, "flag_blended": None,
    "x_pix": None, "y_pix": None,
}


def build_catalogue(cube_store, moments_store, peaks_store, out_paths: dict[str, str | os.PathLike], qa_path, *,
                    threshold_sigma: float = 6.0, min_snr: float = 8.0, box: int = 32, telescope: str = "") -> int:
    """Find and measure polarised sources; write the RMTable (votable, fits, ecsv, csv) and a sky model
    (skymodel, the YAML format of resources/skymodels). Returns the number of sources."""
    import yaml
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from astropy.table import Table
    from astropy.wcs import WCS

    from .wcs import to_fits_header

    cube = open_dataset(cube_store, "cube")
    moments = open_dataset(moments_store, "moments")
    peaks = open_dataset(peaks_store, "Faraday peak")
    image = cube.attrs["image"]
    wcs = WCS(to_fits_header(cube.attrs["wcs"])).celestial
    cell_deg = abs(cube.attrs["wcs"]["CDELT2"])
    freqs = cube["freq"].values
    beam_deg = float(np.nanmedian(cube["bmaj"].values)) if np.isfinite(cube["bmaj"].values).any() else 3 * cell_deg
    beam_px = beam_deg / cell_deg

    p_mean = moments["moments"].sel(quantity="P", moment="mean").values
    peak_pi = peaks["peak_pi_debiased"].values
    band_i = cube[image].sel(stokes="I").mean("freq").values  # Stokes I candidates: faint PI at bright I
    islands = merge_islands([find_islands(peak_pi, threshold_sigma, box), find_islands(p_mean, threshold_sigma, box),
                             find_islands(band_i, threshold_sigma, box)], beam_px)
    grid = peaks.attrs["faraday_grid"]
    lambda0_sq = float(peaks.attrs["lambda0_sq"])
    reffreq_pol = float(299792458.0 / np.sqrt(lambda0_sq))
    stokes_i = cube[image].sel(stokes="I")
    rms_i = cube["rms"].sel(stokes="I").values
    rows = []
    for number, island in enumerate(sorted(islands, key=lambda i: -i.snr)):
        y, x = island.peak_y, island.peak_x
        at = {name: float(peaks[name].values[y, x]) for name in peaks.data_vars}
        if not np.isfinite(at["snr"]) or at["snr"] < min_snr:
            continue
        spectrum = stokes_i.isel(y=y, x=x).values  # one pixel's spectrum: reads one column of chunks
        s0, s0_err, alpha, alpha_err = spectral_index(freqs, spectrum, rms_i, reffreq_pol)
        coordinate = SkyCoord(*wcs.wcs_pix2world([[island.x, island.y]], 0)[0], unit="deg", frame="fk5")
        pos_err = beam_deg / (2.0 * max(at["snr"], 1e-9))  # Condon (1997)-style, per coordinate
        close = [o for o in islands if o is not island and np.hypot(o.y - island.y, o.x - island.x) < 2 * beam_px]
        phi_edge = abs(at["peak_phi"]) > grid["phi_max"] - grid["rmsf_fwhm"]
        fracpol = at["peak_pi_debiased"] / s0 if s0 > 0 else float("nan")
        rows.append({
            "cat_id": f"SP{number:05d}", "ra": coordinate.ra.deg, "dec": coordinate.dec.deg,
            "l": coordinate.galactic.l.deg, "b": coordinate.galactic.b.deg, "pos_err": pos_err,
            "rm": at["peak_phi"], "rm_err": at["peak_phi_err"], "rm_method": "RM Synthesis - Pol. Int",
            "complex_flag": "Y" if at["cc_moment2"] > 0.5 * grid["rmsf_fwhm"] else "N", "complex_test": "second moment of clean components",
            "rm_width": at["cc_moment2"], "polint": at["peak_pi_debiased"], "polint_err": at["fdf_noise"],
            "pol_bias": "2012PASA...29..214G", "flux_type": "Peak",
            "fracpol": fracpol, "fracpol_err": fracpol * np.hypot(at["fdf_noise"] / at["peak_pi_debiased"], s0_err / s0) if s0 > 0 else float("nan"),
            "polangle": (at["pol_angle0_deg"] + np.rad2deg(at["peak_phi"] * lambda0_sq)) % 180.0, "polangle_err": at["pol_angle0_err_deg"],
            "derot_polangle": at["pol_angle0_deg"], "derot_polangle_err": at["pol_angle0_err_deg"], "reffreq_pol": reffreq_pol,
            "stokesI": s0, "stokesI_err": s0_err, "spectral_index": alpha, "spectral_index_err": alpha_err, "reffreq_I": reffreq_pol,
            "beam_maj": beam_deg, "beam_min": float(np.nanmedian(cube["bmin"].values)), "beam_pa": float(np.nanmedian(cube["bpa"].values)),
            "rmsf_fwhm": grid["rmsf_fwhm"], "noise_chan": float(np.nanmedian(cube["rms"].sel(stokes=["Q", "U"]).values)),
            "minfreq": float(freqs.min()), "maxfreq": float(freqs.max()),
            "channel_width": float(np.median(np.diff(freqs))) if len(freqs) > 1 else float("nan"),
            "Nchan": int(np.isfinite(rms_i).sum()), "telescope": telescope,
            "snr_pol": at["snr"], "fdf_noise": at["fdf_noise"], "flag_low_snr": bool(at["snr"] < 10.0),
            "flag_phi_edge": bool(phi_edge), "flag_blended": bool(island.maxima > 1 or close),
            "x_pix": island.x, "y_pix": island.y,
        })
    table = Table(rows=rows, names=list(RMTABLE_COLUMNS)) if rows else Table(names=list(RMTABLE_COLUMNS))
    for name, unit in RMTABLE_COLUMNS.items():
        if unit:
            table[name].unit = u.Unit(unit)
    # FITS-length keys, so the FITS table carries them without HIERARCH cards
    table.meta.update({"ORIGIN": "spectropol", "RMTVER": "1.1", "DETSIG": threshold_sigma, "MINSNR": min_snr,
                       "COMMENT": ["polarised source catalogue, RMTable columns (Van Eck et al. 2023)"]})
    for kind, path in out_paths.items():
        with atomic_path(path) as partial:
            if kind == "votable":
                table.write(partial, format="votable")
            elif kind == "fits":
                table.write(partial, format="fits")
            elif kind == "ecsv":
                table.write(partial, format="ascii.ecsv")
            elif kind == "csv":
                table.write(partial, format="ascii.csv")
            elif kind == "skymodel":
                ra0, dec0 = np.deg2rad(cube.attrs["wcs"]["CRVAL1"]), np.deg2rad(cube.attrs["wcs"]["CRVAL2"])
                sources = []
                for row in rows:
                    ra, dec = np.deg2rad(row["ra"]), np.deg2rad(row["dec"])
                    l = np.cos(dec) * np.sin(ra - ra0)
                    m = np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(ra - ra0)
                    sources.append({"name": row["cat_id"], "offset_arcsec": [float(np.rad2deg(l) * 3600), float(np.rad2deg(m) * 3600)],
                                    "stokes_i_jy": row["stokesI"], "spectral_index": row["spectral_index"],
                                    "pol_fraction": row["fracpol"], "rm_rad_m2": row["rm"], "pol_angle_deg": row["derot_polangle"]})
                partial.write_text("# Sky model of the detected polarised components (spectropol catalogue)\n"
                                   + yaml.safe_dump({"reference_frequency_hz": reffreq_pol, "sources": sources}, sort_keys=False))
    stats = {"sources": len(rows), "islands": len(islands), "threshold_sigma": threshold_sigma, "min_snr": min_snr,
             "flagged_blended": int(sum(r["flag_blended"] for r in rows)), "flagged_phi_edge": int(sum(r["flag_phi_edge"] for r in rows))}
    write_qa(qa_path, "catalogue", stats, rule="catalogue")
    log.info("catalogue: %d polarised sources from %d islands", len(rows), len(islands))
    return len(rows)
