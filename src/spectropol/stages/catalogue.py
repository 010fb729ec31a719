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
from ..io.cube import cutout_slabs, pixel_cutouts
from ..io.stores import atomic_path, open_store, provenance, select
from ..io.wcs import sin_offset
from ..kernels.beam import FWHM_PER_SIGMA
from ..kernels.faraday import (
    COMPLEXITY_ROWS,
    MATRIX_ROWS_ELEMENTS,
    PEEL_DEPTHS,
    FaradayGrid,
    SigmaAdd,
    doubled_phi,
    faraday_complexity,
    faraday_depth_block,
    fdf_noise_theoretical,
    lambda_squared,
    noise_stride,
    peak_quantities,
    restoring_function,
    rm_synthesis_rows,
    rmsf,
    robust_fdf_noise,
    sigma_add,
    thin_component_residual,
)
from ..kernels.photometry import beam_covariance_px, fit_gaussian, forced_fluxes
from ..kernels.primary_beam import BEAM_FROM_FITS, analytic_response, known_dish_diameter_m
from ..kernels.sources import Island, background_and_rms, find_islands, merge_islands
from ..kernels.stokes_i import fit_stokes_i, synthesis_band_mean
from ..options import CatalogueOptions
from ..qa.documents import write_qa
from .faraday import PEAK_MAPS

log = logging.getLogger(__name__)

# The RMTable standard's columns (Van Eck et al. 2023; standard 1.3, as the rmtable package 1.2.1 has it), every
# one, in its order, with units astropy writes as the standard's (rad/m2 for rad.m-2); flux columns
# are flux densities in Jy (a point source's fitted peak in Jy/beam is its flux density). Blank
# where spectropol cannot know (epoch, integration time: not in a cube) as the standard blanks them.
RMTABLE_STANDARD = {
    "ra": "deg", "dec": "deg", "l": "deg", "b": "deg", "pos_err": "deg",
    "rm": "rad/m2", "rm_err": "rad/m2", "rm_width": "rad/m2", "rm_width_err": "rad/m2",
    "complex_flag": None, "complex_test": None, "rm_method": None, "ionosphere": None, "Ncomp": None,
    "stokesI": "Jy", "stokesI_err": "Jy", "spectral_index": None, "spectral_index_err": None, "reffreq_I": "Hz",
    "polint": "Jy", "polint_err": "Jy", "pol_bias": None, "flux_type": None, "aperture": "deg",
    "fracpol": None, "fracpol_err": None, "polangle": "deg", "polangle_err": "deg", "reffreq_pol": "Hz",
    "stokesQ": "Jy", "stokesQ_err": "Jy", "stokesU": "Jy", "stokesU_err": "Jy",
    "derot_polangle": "deg", "derot_polangle_err": "deg", "stokesV": "Jy", "stokesV_err": "Jy",
    "beam_maj": "deg", "beam_min": "deg", "beam_pa": "deg", "reffreq_beam": "Hz",
    "minfreq": "Hz", "maxfreq": "Hz", "channelwidth": "Hz", "Nchan": None, "rmsf_fwhm": "rad/m2", "noise_chan": "Jy",
    "telescope": None, "int_time": "s", "epoch": "d", "obs_interval": "d", "leakage": None, "beamdist": "deg",
    "catalog_name": None, "dataref": None, "cat_id": None, "type": None, "notes": None,
}
# Beyond the standard: the FDF's SNR and noise, sigma_add, the Stokes I model, POSSUM's flag columns
# (True means suspect; Vanderwoude et al. 2024, as arrakis writes them) and spectropol's own.
EXTRA_COLUMNS = {
    "snr_pol": None, "fdf_noise": "Jy", "sigma_add": None, "sigma_add_err": None, "stokesI_model_order": None,
    "stokesI_fit_flag": None, "snr_flag": None, "channel_flag": None, "leakage_flag": None,
    "complex_sigma_add_flag": None, "complex_M2_CC_flag": None, "local_rm_flag": None, "is_blended_flag": None,
    "flag_phi_edge": None, "flag_resolved": None, "flag_position_fit": None, "x_pix": None, "y_pix": None,
    "pb_response": None, "v_over_i": None,
}
RMTABLE_COLUMNS = RMTABLE_STANDARD | EXTRA_COLUMNS
# The products of the stage: table formats (astropy writers) and the sky model.
TABLE_FORMATS = {"votable": "votable", "fits": "fits", "ecsv": "ascii.ecsv", "csv": "ascii.csv"}
CATALOGUE_FILES = {"votable": "catalogue.vot", "fits": "catalogue.fits", "ecsv": "catalogue.ecsv",
                   "csv": "catalogue.csv", "skymodel": "skymodel.yaml", "spectra": "spectra.fits"}
SPECTRUM_KEY = "_spectrum"  # a row's measured spectra, written to spectra.fits


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
    p_mean = select(moments, "moments", quantity="P", moment="mean")
    peak_pi = peaks["peak_pi_debiased"][...]
    band_i = select(moments, "moments", quantity="I", moment="mean")
    return merge_islands([find_islands(m, options.threshold_sigma, options.box_px) for m in (peak_pi, p_mean, band_i)],
                         beam_px)


def stored_grid(peaks) -> FaradayGrid:
    """The Faraday-depth grid the one pass used, from its peak store."""
    described = peaks.attrs["faraday_grid"]
    freqs = peaks["freq"][...]
    return FaradayGrid(phi=peaks["phi"][...], lambda2=lambda_squared(freqs), weights=peaks["channel_weight"][...],
                       lambda0_sq=float(peaks.attrs["lambda0_sq"]), fwhm=float(described["rmsf_fwhm"]),
                       max_scale=float(described["max_scale"]), phi_max_channel=float(described["phi_max_channel"]))


def channel_beams_px(cube, cell_deg: float, beam_deg: float) -> np.ndarray:
    """Each channel's restoring beam as a covariance in pixels (nfreq, 2, 2); channels without a
    beam take the median beam (or a circular one of ``beam_deg``)."""
    beams = np.column_stack([cube[k][...] for k in ("bmaj", "bmin", "bpa")]).astype(np.float64)
    finite = np.isfinite(beams).all(axis=1)
    fallback = np.nanmedian(beams[finite], axis=0) if finite.any() else np.array([beam_deg, beam_deg, 0.0])
    beams[~finite] = fallback
    return np.stack([beam_covariance_px(*b, cell_deg) for b in beams])


@dataclasses.dataclass
class SourceShape:
    """Where a source is and what shape it has (pixels), from the fits to the maps."""

    x: float
    y: float
    x_err: float
    y_err: float
    resolved: bool
    intrinsic: np.ndarray  # the source's own covariance (pixels^2), zero where unresolved
    fitted: bool           # False: the fit failed and the peak pixel stands in


def source_position(island: Island, maps: list[tuple[np.ndarray, float]], beam_px: np.ndarray) -> SourceShape:
    """The position from a point-source fit to each of ``maps`` (image, its rms there), the one that
    places it more precisely: for a source, the peak-PI map (the map it is found in) and the
    band-mean I map, since a source a few per cent polarised is far brighter in I, and the flux
    lost at a position off by delta is 4 ln2 (delta / FWHM)^2, which at the PI map's precision
    would exceed the error of a bright source's I. The peak pixel where no fit succeeds."""
    major_px = float(np.sqrt(np.linalg.eigvalsh(beam_px)[-1])) * FWHM_PER_SIGMA
    best = None
    for image, rms in maps:
        if not (np.isfinite(rms) and rms > 0):
            continue
        fit = fit_gaussian(image, island.peak_x, island.peak_y, beam_px, rms, size=False)
        moved = np.hypot(fit.x - island.peak_x, fit.y - island.peak_y)
        if fit.converged and fit.peak > 0 and np.isfinite(fit.x_err) and moved <= 0.5 * major_px:
            if best is None or np.hypot(fit.x_err, fit.y_err) < np.hypot(best.x_err, best.y_err):
                best = fit
    if best is None:
        return SourceShape(float(island.peak_x), float(island.peak_y), 0.5, 0.5, False, np.zeros((2, 2)), False)
    return SourceShape(best.x, best.y, best.x_err, best.y_err, False, np.zeros((2, 2)), True)


def primary_beam_response(options: CatalogueOptions, wcs: dict, freqs: np.ndarray, ra_deg: np.ndarray,
                          dec_deg: np.ndarray, offset_rad: np.ndarray, source: str = "cube") -> np.ndarray:
    """The primary beam's response at each source in each channel (nfreq, nsources): ones without a
    model; the analytic model of catalogue.primary_beam at ``offset_rad`` from the pointing, with the
    dish diameter of the options, of the data (DISHDIAM, from ANTENNA::DISH_DIAMETER) or of the
    telescope; or the beam FITS (the user's, or EveryBeam's or katbeam's as the primary_beam stage
    wrote it) interpolated at (ra, dec)."""
    if options.primary_beam == "none":
        return np.ones((len(freqs), len(ra_deg)))
    if options.primary_beam in BEAM_FROM_FITS:
        from ..io.beam_fits import read_beam_fits

        if not options.primary_beam_fits:
            raise ValueError(f"config: catalogue.primary_beam is {options.primary_beam} but no beam file is given "
                             "(catalogue.primary_beam_fits, or the primary_beam stage's)")
        return read_beam_fits(options.primary_beam_fits).response(freqs, ra_deg, dec_deg)
    diameter = options.dish_diameter_m or float(wcs.get("DISHDIAM", float("nan")))
    if not np.isfinite(diameter):
        diameter = known_dish_diameter_m(str(wcs.get("TELESCOP", "")))
    if not np.isfinite(diameter):
        raise ValueError(f"{source}: catalogue.primary_beam {options.primary_beam} needs a dish diameter; "
                         f"the data do not say (telescope {wcs.get('TELESCOP', 'unknown')!r}): set "
                         "catalogue.dish_diameter_m or give the beam as FITS")
    log.info("primary beam: %s of a %.1f m dish", options.primary_beam, diameter)
    return analytic_response(options.primary_beam, offset_rad, freqs, diameter)


def band_mean_beam(channel_beams: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """The shape of a point source in the band-mean map, where each channel's beam enters with the
    source's flux there: the covariance of that mixture of Gaussians (each weighted by its flux x
    sqrt(det C), its integral). Where beams shrink with frequency, the mean map of a point source is
    wider than the median beam, and fitted against it every source would look resolved."""
    usable = np.isfinite(flux) & (flux > 0)
    if not usable.any():
        return np.median(channel_beams, axis=0)
    weight = flux[usable] * np.sqrt(np.linalg.det(channel_beams[usable]))
    return np.tensordot(weight, channel_beams[usable], axes=1) / weight.sum()


def resolve_source(shape: SourceShape, i_map: np.ndarray, i_rms: float, beam_px: np.ndarray,
                   resolved_snr: float) -> SourceShape:
    """``shape`` with its size from a free Gaussian fit to the band-mean Stokes I map (Gaussian
    noise), against the map's own beam for that source (band_mean_beam), where the source is at
    least ``resolved_snr`` times its error there."""
    if not (np.isfinite(i_rms) and i_rms > 0 and i_map[round(shape.y), round(shape.x)] >= resolved_snr * i_rms):
        return shape  # too faint in I to tell its size from the beam's
    sized = fit_gaussian(i_map, shape.x, shape.y, beam_px, i_rms)
    if sized.converged and sized.resolved and sized.peak >= resolved_snr * sized.peak_err:
        return dataclasses.replace(shape, resolved=True, intrinsic=sized.intrinsic(beam_px))
    return shape


def source_spectra(cube_store, shapes: list[SourceShape], channel_beams: np.ndarray,
                   others: list[tuple[float, float, np.ndarray]] = (),
                   stokes: tuple[str, ...] = ("I", "Q", "U")) -> dict[str, np.ndarray]:
    """``stokes`` spectra of each source (nfreq, nsources), by forced photometry at its fitted
    position with its shape through each channel's beam: the peak flux of an unresolved source, the
    integrated flux of a resolved one; NaN where a channel has no data there. ``noise``: the error of
    each channel's flux in units of that channel's image rms (photometry.forced_fluxes).

    Whatever else is near enough for its beam to reach a source's window, the other ``shapes`` and
    ``others`` (x, y, intrinsic covariance: islands not measured, such as unpolarised sources), is
    fitted with it; closer than half a beam it is the same source, or a blend (flag_blended)."""
    widest = channel_beams[int(np.argmax(np.linalg.det(channel_beams)))]
    fwhm = lambda shape: float(np.sqrt(np.linalg.eigvalsh(widest + shape).max())) * FWHM_PER_SIGMA
    biggest = max(fwhm(s.intrinsic) for s in shapes)
    half = int(np.ceil(biggest)) + 1
    everything = [(s.x, s.y, s.intrinsic) for s in shapes] + list(others)
    nfreq = channel_beams.shape[0]
    out = {k: np.full((nfreq, len(shapes)), np.nan) for k in (*stokes, "noise")}
    radii = [fwhm(shape.intrinsic) for shape in shapes]
    near = [[(x, y, intrinsic) for m, (x, y, intrinsic) in enumerate(everything)
             if m != n and 0.5 * fwhm(np.zeros((2, 2))) < np.hypot(x - shape.x, y - shape.y)
             <= radii[n] + 1.5 * fwhm(intrinsic)] for n, shape in enumerate(shapes)]
    # each channel's flux is fitted on its own, so the cube is read a slab of channels at a time:
    # memory bounded whatever the channel count
    for slab in cutout_slabs(cube_store, len(stokes), len(shapes), half):
        beams = channel_beams[slab]
        cutouts = pixel_cutouts(cube_store, stokes, [(s.y, s.x) for s in shapes], half, channels=slab)
        for n, (shape, (planes, y_first, x_first)) in enumerate(zip(shapes, cutouts)):
            seen = beams + shape.intrinsic
            neighbours = [(x, y, beams + intrinsic) for x, y, intrinsic in near[n]]
            area = np.sqrt(np.linalg.det(seen) / np.linalg.det(beams))
            flux, noise = forced_fluxes(planes, shape.x, shape.y, seen, x_first, y_first, beams, radii[n],
                                        neighbours)
            for k, name in enumerate(stokes):
                out[name][slab, n] = area * flux[:, k]
            out["noise"][slab, n] = area * noise[:, 0]  # Stokes I's, for its spectral fit
    return out


def measure_sources(cube, peaks, moments, islands: list[Island], options: CatalogueOptions, *, beam_deg: float,
                    beam_px: float, telescope: str = "", ionosphere: str = "Unknown",
                    cube_store: str | os.PathLike) -> list[dict]:
    """One RMTable row per island whose source spectrum's FDF peak reaches ``min_snr``, every quantity
    taken at the position fitted to the peak-PI map (kernels/photometry.py): I, Q and U spectra by
    forced photometry there (divided by the primary beam's response there), then RM synthesis,
    RM-CLEAN and the exact peak of those spectra, the errors from the noise at the source (its Stokes
    V spectrum's scatter, or the FDF noise around it), the complexity from its significant clean
    components (faraday_complexity)."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    from ..io.wcs import to_fits_header

    wcs = WCS(to_fits_header(cube.attrs["wcs"])).celestial
    cell_deg = abs(cube.attrs["wcs"]["CDELT2"])
    freqs = cube["freq"][...]
    grid = stored_grid(peaks)
    lambda0_sq = grid.lambda0_sq
    reffreq_pol = float(SPEED_OF_LIGHT / np.sqrt(lambda0_sq))
    rms = dict(zip("IQUV", select(cube, "rms", stokes=list("IQUV")).T))  # per channel, read once
    # Stokes V where the cube has it: stokesV and V/I, what leaks into V (or is circularly polarised)
    stokes = ("I", "Q", "U", "V") if "V" in cube.attrs.get("stokes_present", "IQUV") and np.isfinite(rms["V"]).any() \
        else ("I", "Q", "U")
    rms_i = rms["I"]
    beam_min, beam_pa = (float(np.nanmedian(cube[k][...])) for k in ("bmin", "bpa"))
    noise_chan = float(np.nanmedian(np.concatenate([rms["Q"], rms["U"]])))
    maps = {name: peaks[name][...] for name in PEAK_MAPS}
    channel_beams = channel_beams_px(cube, cell_deg, beam_deg)
    band_beam = beam_covariance_px(beam_deg, beam_min if np.isfinite(beam_min) else beam_deg,
                                   beam_pa if np.isfinite(beam_pa) else 0.0, cell_deg)
    band_i = select(moments, "moments", quantity="I", moment="mean")
    _, band_i_rms = background_and_rms(band_i, options.box_px)
    ordered = sorted(islands, key=lambda i: -i.snr)
    # islands whose brightest pixel is far below the cut cannot reach it at a fitted position
    near = [(number, island) for number, island in enumerate(ordered)
            if np.isfinite(maps["snr"][island.peak_y, island.peak_x])
            and maps["snr"][island.peak_y, island.peak_x] >= 0.5 * options.min_snr]
    if not near:
        return []
    shapes = [source_position(island, [(maps["peak_pi"], float(maps["fdf_noise"][island.peak_y, island.peak_x])),
                                       (band_i, float(band_i_rms[island.peak_y, island.peak_x]))], band_beam)
              for _, island in near]
    measured = {id(island) for _, island in near}
    # what is not measured (unpolarised sources, mostly) is still fitted with its neighbours, at its
    # own fitted position: its beam's wing a few pixels off is steep, a centroid too rough for it
    others = []
    for island in islands:
        if id(island) not in measured:
            place = source_position(island, [(band_i, float(band_i_rms[island.peak_y, island.peak_x]))], band_beam)
            others.append((place.x, place.y, np.zeros((2, 2))))
    spectra = source_spectra(cube_store, shapes, channel_beams, others, stokes)
    sized = [resolve_source(shape, band_i, float(band_i_rms[round(shape.y), round(shape.x)]),
                            band_mean_beam(channel_beams, spectra["I"][:, n]), options.resolved_snr)
             for n, shape in enumerate(shapes)]
    resolved = [n for n, shape in enumerate(sized) if shape.resolved]
    if resolved:  # their spectra again, as integrated fluxes of their fitted shape
        rest = [(shape.x, shape.y, shape.intrinsic) for n, shape in enumerate(sized) if not shape.resolved]
        again = source_spectra(cube_store, [sized[n] for n in resolved], channel_beams, others + rest, stokes)
        for name in spectra:
            spectra[name][:, resolved] = again[name]
    shapes = sized
    nfreq = len(freqs)
    # the primary beam: every spectrum (and its error) divided by the response where the source is
    world = wcs.wcs_pix2world(np.array([[s.x, s.y] for s in shapes], dtype=np.float64), 0)
    centre = SkyCoord(cube.attrs["wcs"]["CRVAL1"], cube.attrs["wcs"]["CRVAL2"], unit="deg", frame="fk5")
    offset = centre.separation(SkyCoord(world[:, 0], world[:, 1], unit="deg", frame="fk5")).rad
    response = primary_beam_response(options, cube.attrs["wcs"], freqs, world[:, 0], world[:, 1],
                                     np.nan_to_num(offset, nan=np.pi), source=str(cube_store))
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in spectra:
            spectra[name] = spectra[name] / response
        increasing = np.argsort(freqs)
        response_ref = np.array([np.interp(reffreq_pol, freqs[increasing], r[increasing]) for r in response.T])
    rms_qu = np.sqrt(0.5 * (rms["Q"] ** 2 + rms["U"] ** 2))
    models = [fit_stokes_i(freqs, spectra["I"][:, n], spectra["noise"][:, n] * rms_i, reffreq_pol,
                           options.stokes_i_max_order) for n in range(len(shapes))]
    q, u = spectra["Q"].copy(), spectra["U"].copy()
    # q = Q/I, u = U/I through each source's Stokes I model; a source without one (no Stokes I, or
    # none positive) keeps Q, U, and its rm_method says so
    fractional = np.array([options.fractional and m.valid for m in models], dtype=bool)
    for k in np.nonzero(fractional)[0]:
        q[:, k] /= models[k](freqs)
        u[:, k] /= models[k](freqs)
    faraday = source_faraday(q, u, grid, peaks.attrs.get("clean"), options)
    # The errors from the noise at each source, not from its own residual FDF, which for a bright
    # source holds what RM-CLEAN leaves of its spectrum's shape (RM errors were 3x the scatter on
    # imaged visibilities). What forced photometry and the Stokes I model make of each channel's
    # image noise gives the FDF noise of the source's spectra, scaled by the noise seen there: the
    # scatter of its Stokes V spectrum about its fit (V has the noise of Q and U, and no Faraday
    # structure: the noise of a restored image is correlated like the dirty beam, not the Gaussian
    # the photometry assumes, and 1.3x less in a fitted amplitude); without V, the one pass's FDF
    # noise in an annulus about the source over that of a pixel's channel noise.
    sigma_chan = spectra["noise"] * rms_qu[:, None]
    for k in np.nonzero(fractional)[0]:
        sigma_chan[:, k] /= models[k](freqs)
    shape_i = shape_of_i(models, freqs)
    if "V" in spectra:
        # Stokes V at nu0 with its error (stokesV), fitted as the Stokes I model's shape, and the scatter about it
        sigma_v = spectra["noise"] * rms["V"][:, None]
        stokes_v = scaled_like(spectra["V"], sigma_v, shape_i)
        scale = noise_scale(spectra["V"], sigma_v, shape_i, stokes_v[0])
    else:
        stokes_v = np.full((2, len(shapes)), np.nan)
        around = annulus_noise(maps["fdf_noise"], maps["snr"], [(s.x, s.y) for s in shapes], beam_px, options.box_px)
        scale = around / fdf_noise_theoretical(grid, rms_qu)
    local = np.array([scale[k] * fdf_noise_theoretical(grid, sigma_chan[:, k]) for k in range(len(shapes))])
    faraday |= with_noise(faraday, np.where(np.isfinite(local) & (local > 0), local, faraday["fdf_noise"]), grid)
    # what a thin component at each source's RM leaves in its spectrum, P taken to follow its
    # Stokes I model (flat without one): sigma_add and the leakage estimate
    band_mean = synthesis_band_mean(grid.weights, shape_i)
    rms_qu_source = spectra["noise"] * rms_qu[:, None] / shape_i
    flux_i = np.array([m.flux if m.valid else np.nan for m in models])
    complexity = source_complexity(freqs, spectra["Q"] / shape_i, spectra["U"] / shape_i, rms_qu_source, faraday,
                                   grid, options, flux_i)
    channels_with_data = int(np.isfinite(rms["Q"]).sum())
    rows, beyond_beam = [], 0
    for n, ((number, island), shape) in enumerate(zip(near, shapes)):
        at = {name: float(values[n]) for name, values in faraday.items()}
        if not (at["snr"] >= options.min_snr):
            continue
        if options.primary_beam != "none" and not response_ref[n] >= options.primary_beam_min:
            beyond_beam += 1
            continue
        model = models[n]
        if not np.all(np.isfinite(world[n])):
            # beyond the horizon of the projection: no direction, so no source (the maps are NaN
            # there; this guards against an island that reaches the edge of the sky)
            log.warning("island at pixel (%.1f, %.1f) has no sky position; not catalogued", shape.x, shape.y)
            continue
        coordinate = SkyCoord(*world[n], unit="deg", frame="fk5")
        pos_err = float(np.hypot(shape.x_err, shape.y_err) / np.sqrt(2.0) * cell_deg)
        close = [o for o in islands if o is not island and np.hypot(o.y - island.y, o.x - island.x) < 2 * beam_px]
        phi_edge = abs(at["peak_phi"]) > grid.phi[-1] - grid.fwhm
        i0, i0_err = (model.flux, model.flux_err) if model.valid else (float("nan"), float("nan"))
        # fractional synthesis measures p itself; otherwise the FDF peak is P averaged over the band
        # with the synthesis weights, which for a steep spectrum is up to 1% below P at reffreq_pol:
        # taken back there through the Stokes I model (p constant across the band), then p = PI / I(nu0)
        scale = i0 if fractional[n] else 1.0 / float(band_mean[n])
        polint, polint_err = at["peak_pi_debiased"] * scale, at["fdf_noise"] * scale
        fdf_snr = at["peak_pi_debiased"] / at["fdf_noise"] if at["fdf_noise"] > 0 else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            fracpol = polint / i0
            fracpol_err = abs(fracpol) * np.hypot(1.0 / fdf_snr, i0_err / i0)
        added, leakage = complexity.sigma_add[n], complexity.leakage[n]
        fracpol_known = np.isfinite(fracpol) and options.leakage_max_fracpol is not None
        near_zero = abs(at["peak_phi"]) <= options.leakage_window_fwhm * grid.fwhm
        leaky = near_zero and (not fracpol_known or fracpol < options.leakage_max_fracpol)
        if leaky:  # the peak itself is where leakage sits: all of it is the estimate
            leakage = fracpol
        m2_flag, sigma_add_flag = bool(complexity.m2_flag[n]), bool(complexity.sigma_add_flag[n])
        finite = np.isfinite(spectra["Q"][:, n]) & np.isfinite(spectra["U"][:, n])
        chi = np.deg2rad((at["pol_angle0_deg"] + np.rad2deg(at["peak_phi"] * lambda0_sq)) % 180.0)
        rows.append({
            "ra": coordinate.ra.deg, "dec": coordinate.dec.deg,
            "l": coordinate.galactic.l.deg, "b": coordinate.galactic.b.deg, "pos_err": pos_err,
            "rm": at["peak_phi"], "rm_err": rm_error(at["snr"], grid), "rm_width": at["m2_cc"], "rm_width_err": np.nan,
            "complex_flag": "Y" if (m2_flag or sigma_add_flag) else "N", "complex_test": "Sigma_add",
            "rm_method": "RM Synthesis - Fractional polarization" if fractional[n] else "RM Synthesis - Pol. Int",
            "ionosphere": ionosphere, "Ncomp": int(at["ncomp"]),
            "stokesI": i0, "stokesI_err": i0_err, "spectral_index": model.alpha,
            "spectral_index_err": model.alpha_err, "reffreq_I": reffreq_pol,
            "polint": polint, "polint_err": polint_err, "pol_bias": "2012PASA...29..214G",
            "flux_type": "Integrated" if shape.resolved else "Gaussian fit - Peak", "aperture": np.nan,
            "fracpol": fracpol, "fracpol_err": fracpol_err,
            "polangle": np.rad2deg(chi), "polangle_err": at["pol_angle0_err_deg"], "reffreq_pol": reffreq_pol,
            "stokesQ": polint * np.cos(2 * chi), "stokesQ_err": polint_err,
            "stokesU": polint * np.sin(2 * chi), "stokesU_err": polint_err,
            "derot_polangle": at["pol_angle0_deg"], "derot_polangle_err": at["pol_angle0_err_deg"],
            "stokesV": stokes_v[0, n], "stokesV_err": stokes_v[1, n],
            "beam_maj": beam_deg, "beam_min": beam_min, "beam_pa": beam_pa % 180.0 if np.isfinite(beam_pa) else np.nan,
            "reffreq_beam": float(np.median(freqs)),
            "minfreq": float(freqs.min()), "maxfreq": float(freqs.max()),
            "channelwidth": float(np.median(np.abs(np.diff(freqs)))) if nfreq > 1 else float("nan"),
            "Nchan": int(finite.sum()), "rmsf_fwhm": grid.fwhm, "noise_chan": noise_chan,
            "telescope": telescope or "Unknown", "int_time": np.nan, "epoch": np.nan, "obs_interval": np.nan,
            "leakage": leakage, "beamdist": float(coordinate.separation(centre).deg),
            "catalog_name": "spectropol", "dataref": "", "cat_id": f"SP{number:05d}", "type": "", "notes": "",
            "snr_pol": at["snr"], "fdf_noise": at["fdf_noise"], "sigma_add": added.median, "sigma_add_err": added.err,
            "stokesI_model_order": model.order if model.valid else -1, "stokesI_fit_flag": not model.valid,
            "snr_flag": bool(at["snr"] < options.flag_snr),
            "channel_flag": bool(finite.sum() < 0.5 * channels_with_data),
            "leakage_flag": bool(leaky), "complex_sigma_add_flag": sigma_add_flag, "complex_M2_CC_flag": m2_flag,
            "local_rm_flag": False, "is_blended_flag": bool(island.maxima > 1 or close),
            "flag_phi_edge": bool(phi_edge), "flag_resolved": shape.resolved, "flag_position_fit": not shape.fitted,
            "x_pix": shape.x, "y_pix": shape.y,
            "pb_response": float(response_ref[n]) if options.primary_beam != "none" else np.nan,
            "v_over_i": stokes_v[0, n] / i0 if model.valid else np.nan,
            # the spectra measured (fitted photometry, primary beam divided out) and their noise:
            # catalogue/spectra.fits, not a catalogue column
            SPECTRUM_KEY: {**{s: spectra[s][:, n] for s in stokes}, "sigma_I": spectra["noise"][:, n] * rms_i,
                           "sigma_QU": sigma_chan[:, n], "I_model": model(freqs), "freq": freqs},
        })
    if beyond_beam:
        log.info("%d sources where the primary beam's response is below %g not catalogued", beyond_beam,
                 options.primary_beam_min)
    flag_local_rms(rows, options.local_rm_neighbours)
    return rows


def shape_of_i(models: list, freqs: np.ndarray) -> np.ndarray:
    """Each source's Stokes I model over the band, 1 at the reference frequency (flat without a
    model): (nfreq, nsources)."""
    return np.column_stack([m(freqs) / m.flux if m.valid else np.ones(len(freqs)) for m in models]) if models \
        else np.empty((len(freqs), 0))


def noise_scale(values: np.ndarray, sigma: np.ndarray, shape: np.ndarray, amplitude: np.ndarray,
                min_channels: int = 4) -> np.ndarray:
    """Per source (columns), the rms of (values - amplitude shape) / sigma about the least-squares
    fit (scaled_like's amplitude): how much larger the noise of these spectra is than ``sigma``
    says. NaN with fewer than ``min_channels`` channels."""
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = (values - amplitude * shape) / sigma
        usable = np.isfinite(normalised).sum(axis=0)
        return np.where(usable >= min_channels, np.sqrt(np.nansum(normalised**2, axis=0) / (usable - 1)), np.nan)


def annulus_noise(noise_map: np.ndarray, snr_map: np.ndarray, centres: list[tuple[float, float]], beam_px: float,
                  box_px: int, min_pixels: int = 50) -> np.ndarray:
    """The median of ``noise_map`` (the FDF noise of every pixel) in an annulus about each (x, y):
    from 2.5 beams out to box_px beyond, leaving out pixels of other sources (SNR above 5) and
    blanks; the map's median where fewer than ``min_pixels`` remain."""
    ny, nx = noise_map.shape
    inner = 2.5 * beam_px
    outer = inner + max(box_px, 4 * beam_px)
    quiet = np.isfinite(noise_map) & ~(snr_map > 5.0)
    everywhere = float(np.nanmedian(noise_map[quiet])) if quiet.any() else float("nan")
    out = np.full(len(centres), everywhere)
    for n, (x, y) in enumerate(centres):
        y0, y1 = max(0, int(y - outer)), min(ny, int(y + outer) + 1)
        x0, x1 = max(0, int(x - outer)), min(nx, int(x + outer) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        distance = np.hypot(xx - x, yy - y)
        ring = (distance >= inner) & (distance <= outer) & quiet[y0:y1, x0:x1]
        if ring.sum() >= min_pixels:
            out[n] = float(np.median(noise_map[y0:y1, x0:x1][ring]))
    return out


def with_noise(peaks: dict, sigma: np.ndarray, grid: FaradayGrid) -> dict:
    """The peak quantities of ``peaks`` (faraday_depth_block's) again with FDF noise ``sigma``."""
    angle = np.deg2rad(peaks["pol_angle_deg"])
    return peak_quantities(peaks["peak_phi"], peaks["peak_pi"], peaks["peak_pi"] * np.cos(2 * angle),
                           peaks["peak_pi"] * np.sin(2 * angle), sigma, grid, np.isfinite(peaks["peak_pi"]),
                           peaks["peak_at_edge"])


def scaled_like(values: np.ndarray, sigma: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Per source (columns), the amplitude a and its error of the least-squares fit values = a shape
    (Gaussian errors ``sigma``): Stokes V at the reference frequency taken to follow the Stokes I
    model's shape, as a leak of I into V does. (2, nsources); NaN without usable channels."""
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(np.isfinite(values) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(shape),
                          1.0 / sigma**2, 0.0)
        values, shape = np.nan_to_num(values), np.nan_to_num(shape)
        information = np.sum(weight * shape**2, axis=0)
        amplitude = np.sum(weight * values * shape, axis=0) / information
        return np.stack([np.where(information > 0, amplitude, np.nan),
                         np.where(information > 0, 1.0 / np.sqrt(information), np.nan)])


def rm_error(snr: float, grid: FaradayGrid) -> float:
    """The RM error of a thin source at FDF peak ``snr``: the least-squares error of the depth,
    1 / (2 SNR sqrt(var_w(lambda^2))) with the synthesis weights. The peak maps keep Brentjens &
    de Bruyn's FWHM / (2 SNR) (RM-Tools' dPhiPeakPIfit, which they are checked against): with the
    FWHM taken as 3.8 / range(lambda^2) that is 4-9% larger on these bands than the scatter it
    describes (tests/test_source_measurement.py), and a catalogue's errors are judged by the scatter."""
    used = grid.weights > 0
    weights, lambda2 = grid.weights[used], grid.lambda2[used]
    variance = float(np.sum(weights * (lambda2 - grid.lambda0_sq) ** 2) / np.sum(weights))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(1.0 / (2.0 * snr * np.sqrt(variance)))


def leakage_estimate(residual: np.ndarray, noise: np.ndarray, flux_i: float) -> float:
    """Fractional polarisation at phi = 0 left once the source's own thin component is removed: the
    weighted mean of the residual (Q + iU) over the band, over Stokes I; an instrumental leakage of
    I into Q and U, flat in frequency, sits there (NaN without a Stokes I model)."""
    nfreq = len(noise)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (residual[:nfreq] + 1j * residual[nfreq:]) * noise  # back to flux
        weight = np.where(np.isfinite(r), 1.0 / noise**2, 0.0)
    if not (np.isfinite(flux_i) and flux_i > 0 and weight.sum() > 0):
        return float("nan")
    return float(abs(np.nansum(weight * np.nan_to_num(r)) / weight.sum()) / flux_i)


def flag_local_rms(rows: list[dict], neighbours: int) -> None:
    """local_rm_flag: an RM more than 3 robust sigma from the median of its ``neighbours`` nearest
    good sources (not snr_flag, leakage_flag or channel_flag), as POSSUM flags RMs unlike those
    around them; where fewer than 5 good sources exist, nothing is flagged."""
    good = [r for r in rows if not (r["snr_flag"] or r["leakage_flag"] or r["channel_flag"])]
    if len(good) < 6:
        return
    ra, dec, rm = (np.array([r[k] for r in good]) for k in ("ra", "dec", "rm"))
    for row in rows:
        cos_d = np.cos(np.deg2rad(row["dec"]))
        distance = np.hypot((ra - row["ra"]) * cos_d, dec - row["dec"])
        others = np.argsort(distance)
        others = [k for k in others if good[k] is not row][:neighbours]
        values = rm[others]
        spread = 1.4826 * np.median(np.abs(values - np.median(values)))
        row["local_rm_flag"] = bool(spread > 0 and abs(row["rm"] - np.median(values)) > 3.0 * spread)


@dataclasses.dataclass
class SourceComplexity:
    """Per source: sigma_add (in units of the noise), the leakage estimate, and the two flags."""

    sigma_add: list[SigmaAdd]
    leakage: np.ndarray
    m2_flag: np.ndarray
    sigma_add_flag: np.ndarray


def source_complexity(freqs: np.ndarray, q: np.ndarray, u: np.ndarray, sigma: np.ndarray, faraday: dict,
                      grid: FaradayGrid, options: CatalogueOptions,
                      flux_i: np.ndarray | None = None) -> SourceComplexity:
    """Complexity of the sources' spectra (nfreq, nsources; their noise ``sigma``) measured by
    source_faraday: complex_M2_CC_flag where Ncomp > 1 or m2_CC exceeds complexity_m2_fwhm RMSF
    FWHM, complex_sigma_add_flag where sigma_add of what the thin component at the peak depth leaves
    exceeds complexity_sigma_add times its error; with ``flux_i`` the leakage estimate too."""
    n = q.shape[1]
    added, leakage = [], np.full(n, np.nan)
    for k in range(n):
        residual = thin_component_residual(freqs, q[:, k], u[:, k], sigma[:, k], float(faraday["peak_phi"][k]))
        added.append(sigma_add(residual))
        if flux_i is not None:
            leakage[k] = leakage_estimate(residual, sigma[:, k], float(flux_i[k]))
    sigma_add_flag = np.array([a.median > options.complexity_sigma_add * a.err for a in added], dtype=bool)
    # the m2_CC / Ncomp flag is the one faraday_complexity set in source_faraday
    return SourceComplexity(added, leakage, np.asarray(faraday["complex"], dtype=bool), sigma_add_flag)


# Sources whose FDFs source_faraday holds at once: one synthesis matrix made (a block of depths at a
# time: 4 s at 4,096 channels x 20,119 depths) for this many, where their FDF, RM-CLEAN's residual,
# clean spectrum and components grow as sources x depths (0.1 GB for 128 on those depths).
SOURCES_PER_PASS = 128


def source_faraday_mb(nchan: int, nphi: int) -> float:
    """Memory (MB) source_faraday holds beyond its inputs for ``nchan`` channels and ``nphi`` depths:
    a block of the synthesis matrix as it is made (kernels.faraday.MATRIX_ROWS_ELEMENTS; its phase,
    exponential and cast, 64 bytes an element at the most), the RMSF on twice the range, five
    complex64 spectra per source of a pass, faraday_complexity's three complex128 FFTs of twice the
    length per row of its pass, and refine_peak's channel data (80 bytes a channel per source) with
    a block of the components it peels."""
    return (64 * MATRIX_ROWS_ELEMENTS + 2 * nphi * 16 + SOURCES_PER_PASS * nphi * 5 * 8
            + COMPLEXITY_ROWS * 2 * nphi * 16 * 3 + nchan * (SOURCES_PER_PASS * 80 + PEEL_DEPTHS * 16)) / 1e6


def source_faraday(q: np.ndarray, u: np.ndarray, grid: FaradayGrid, clean: dict | None,
                   options: CatalogueOptions) -> dict[str, np.ndarray]:
    """RM synthesis, RM-CLEAN and the exact FDF peak of the sources' spectra (nfreq, nsources), with
    the one pass's RM-CLEAN settings (3 sigma, gain 0.1 where it ran without): each source's noise
    is the robust rms of its own FDF (its residual's once cleaned), the cutoff that many times it;
    and the complexity of its significant clean components. SOURCES_PER_PASS sources at a time, each
    measured on its own: memory grows with the depths, not with the sources x depths."""
    cutoff_sigma, gain, max_iter = 3.0, 0.1, 1000
    if clean:
        cutoff_sigma, gain, max_iter = clean["cutoff_sigma"], clean["gain"], clean["max_iter"]
    rmsf_doubled, restore = rmsf(grid, doubled_phi(grid)), restoring_function(grid)
    passes = []
    for first in range(0, q.shape[1], SOURCES_PER_PASS):
        q32, u32 = (np.ascontiguousarray(a[:, first:first + SOURCES_PER_PASS], dtype=np.float32) for a in (q, u))
        dirty = rm_synthesis_rows(q32, u32, grid)
        dirty_noise = robust_fdf_noise(dirty, noise_stride(grid), axis=1)
        # sigma_theory is not used where RM-CLEAN runs: each spectrum's residual gives its noise
        block = faraday_depth_block(q32, u32, grid, float(np.nanmedian(dirty_noise)), dirty=dirty,
                                    clean_cutoff=(cutoff_sigma * dirty_noise).astype(np.float32), clean_gain=gain,
                                    clean_max_iter=max_iter, candidate_snr=0.0, rmsf_doubled=rmsf_doubled,
                                    restore=restore)
        components = block.spectra(np.arange(q32.shape[1]))["clean_components"]
        complexity = faraday_complexity(components, grid, block.peaks["fdf_noise"], options.complexity_snr,
                                        options.complexity_m2_fwhm)
        passes.append(block.peaks | {"m2_cc": complexity.m2_cc, "ncomp": complexity.ncomp.astype(np.float64),
                                     "complex": complexity.complex.astype(np.float64)})
    return {name: np.concatenate([measured[name] for measured in passes]) for name in passes[0]}


STRING_COLUMNS = ("complex_flag", "complex_test", "rm_method", "ionosphere", "pol_bias", "flux_type", "telescope",
                  "catalog_name", "dataref", "cat_id", "type", "notes")
INTEGER_COLUMNS = ("Ncomp", "Nchan", "stokesI_model_order")


def column_dtype(name: str):
    """The type of a catalogue column: text, integer, flag (bool) or float."""
    if name in STRING_COLUMNS:
        return str
    if name in INTEGER_COLUMNS:
        return np.int32
    if name.endswith("_flag") and name != "complex_flag" or name.startswith("flag_"):
        return bool
    return np.float64


def rmtable(rows: list[dict], options: CatalogueOptions):
    """The rows as an astropy Table with RMTable column names, types and units (an empty table
    keeps them too)."""
    from astropy import units as u
    from astropy.table import Column, Table

    names = list(RMTABLE_COLUMNS)
    table = Table([Column([row[name] for row in rows], name=name, dtype=column_dtype(name),
                          unit=u.Unit(RMTABLE_COLUMNS[name]) if RMTABLE_COLUMNS[name] else None)
                   for name in names])
    # FITS-length keys, so the FITS table carries them without HIERARCH cards
    table.meta.update({"ORIGIN": "spectropol", "RMTVER": "1.3", "DETSIG": options.threshold_sigma,
                       "MINSNR": options.min_snr, "PBMODEL": options.primary_beam,
                       "COMMENT": ["polarised source catalogue, RMTable columns (Van Eck et al. 2023)"]})
    return table


def with_provenance(table, made: dict, kind: str):
    """``table`` with the provenance in its metadata, as each format keeps it: a mapping in ECSV,
    HISTORY cards (PROVENANCE.key = value, as the FITS images) in FITS. astropy writes no table
    metadata to VOTable or CSV: those are the same table, and the ECSV says who made it."""
    if kind not in ("ecsv", "fits"):
        return table
    copy = table.copy(copy_data=False)
    if kind == "ecsv":
        copy.meta["provenance"] = dict(made)
    else:
        copy.meta["HISTORY"] = [f"PROVENANCE.{k} = {v}" for k, v in made.items()]
    return copy


def sky_model(rows: list[dict], wcs: dict, reference_hz: float) -> dict:
    """The detections in the sky-model format spectropol simulate reads (resources/skymodels)."""
    sources = []
    for row in rows:
        l, m = sin_offset(row["ra"], row["dec"], (wcs["CRVAL1"], wcs["CRVAL2"]))
        sources.append({"name": row["cat_id"], "offset_arcsec": [float(np.rad2deg(l) * 3600),
                                                                 float(np.rad2deg(m) * 3600)],
                        "stokes_i_jy": row["stokesI"], "spectral_index": row["spectral_index"],
                        "pol_fraction": row["fracpol"], "rm_rad_m2": row["rm"], "pol_angle_deg": row["derot_polangle"]})
    return {"reference_frequency_hz": reference_hz, "sources": sources}


def write_spectra(rows: list[dict], path) -> None:
    """Each catalogued source's Stokes spectra as the catalogue measured them (fitted photometry at
    its position, the primary beam divided out), with their 1-sigma noise and the fitted Stokes I
    model (I_model, NaN where none was fitted), in one FITS binary table:
    a row per source (cat_id, then a vector per quantity over the channels), the frequencies (Hz) in
    the FREQ extension; what RM-Tools' rmsynth1d or a refit needs, without the cube."""
    from astropy.io import fits

    freqs = rows[0][SPECTRUM_KEY]["freq"] if rows else np.empty(0)
    names = [k for k in ("I", "Q", "U", "V", "sigma_I", "sigma_QU", "I_model") if rows and k in rows[0][SPECTRUM_KEY]]
    nfreq = len(freqs)
    columns = [fits.Column(name="cat_id", format="16A", array=np.array([r["cat_id"] for r in rows], dtype="U16"))]
    columns += [fits.Column(name=name, format=f"{nfreq}E", unit="Jy",
                            array=np.array([r[SPECTRUM_KEY][name] for r in rows], dtype=np.float32).reshape(-1, nfreq))
                for name in names]
    spectra = fits.BinTableHDU.from_columns(columns, name="SPECTRA")
    spectra.header["COMMENT"] = "Stokes spectra of the catalogued sources (spectropol catalogue), beam-corrected"
    frequency = fits.BinTableHDU.from_columns([fits.Column(name="freq", format="D", unit="Hz", array=freqs)],
                                              name="FREQ")
    fits.HDUList([fits.PrimaryHDU(), spectra, frequency]).writeto(path, overwrite=True)


def read_spectra(path) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """spectra.fits: the frequencies and {cat_id: {quantity: spectrum}}."""
    from astropy.io import fits

    with fits.open(path) as hdus:
        freqs = np.asarray(hdus["FREQ"].data["freq"], dtype=np.float64)
        data = hdus["SPECTRA"].data
        quantities = [name for name in data.columns.names if name != "cat_id"]
        spectra = {str(row["cat_id"]).strip(): {q: np.asarray(row[q], dtype=np.float64) for q in quantities}
                   for row in data}
    return freqs, spectra


def build_catalogue(cube_store, moments_store, peaks_store, out_paths: dict[str, str | os.PathLike], qa_path,
                    options: CatalogueOptions = CatalogueOptions(), *, telescope: str = "",
                    rule: str = "spectropol") -> CatalogueResult:
    """Find and measure polarised sources; write the RMTable (votable, fits, ecsv, csv) and a sky model
    (skymodel, the YAML format of resources/skymodels)."""
    import yaml

    # zarr alone, the arrays read by name and label (io.stores.select): xarray and pandas would
    # cost the job 0.3 s of imports for nothing it needs
    cube = open_store(cube_store, "cube")
    moments = open_store(moments_store, "moments")
    peaks = open_store(peaks_store, "Faraday peak")
    cell_deg = abs(cube.attrs["wcs"]["CDELT2"])
    bmaj = cube["bmaj"][...]
    beam_deg = float(np.nanmedian(bmaj)) if np.isfinite(bmaj).any() else 3 * cell_deg
    beam_px = beam_deg / cell_deg
    islands = find_candidates(moments, peaks, options, beam_px)
    rows = measure_sources(cube, peaks, moments, islands, options, beam_deg=beam_deg, beam_px=beam_px,
                           telescope=telescope, cube_store=cube_store)
    table = rmtable(rows, options)
    made = provenance({"cube": str(cube_store), "moments": str(moments_store), "peaks": str(peaks_store)},
                      config_hash=None)
    for kind, path in out_paths.items():
        with atomic_path(path) as partial:
            if kind == "spectra":
                write_spectra(rows, partial)
            elif kind == "skymodel":
                reference_hz = float(SPEED_OF_LIGHT / np.sqrt(float(peaks.attrs["lambda0_sq"])))
                partial.write_text("# Sky model of the detected polarised components (spectropol catalogue)\n"
                                   + yaml.safe_dump(sky_model(rows, cube.attrs["wcs"], reference_hz), sort_keys=False))
            else:
                with_provenance(table, made, kind).write(partial, format=TABLE_FORMATS[kind])
    result = CatalogueResult(sources=len(rows), islands=len(islands), threshold_sigma=options.threshold_sigma,
                             min_snr=options.min_snr, flagged_blended=int(sum(r["is_blended_flag"] for r in rows)),
                             flagged_phi_edge=int(sum(r["flag_phi_edge"] for r in rows)))
    write_qa(qa_path, "catalogue", result, rule)
    log.info("catalogue: %d polarised sources from %d islands", len(rows), len(islands))
    return result
