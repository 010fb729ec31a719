"""The Faraday stages on the cube: RM synthesis, RM-CLEAN and peak maps, with Dask over spatial
tiles that hold the whole spectral (or Faraday-depth) axis; memory per task is set by ``chunk_mb``
whatever the number of channels. Products are labelled Zarr stores (phi in rad/m^2) and FITS.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import ClassVar

import numpy as np

from ..errors import fail
from ..io.cube import open_cube, require_linear_polarisation, stored_chunk
from ..io.fits import product_keywords, write_cube_by_tiles, write_map
from ..io.stores import atomic_path, open_dataset, provenance
from ..io.wcs import fardepth_axis
from ..kernels.faraday import (
    FaradayGrid,
    doubled_phi,
    faraday_grid,
    fdf_noise_theoretical,
    peak_maps,
    rm_clean_block,
    rm_synthesis_block,
    rmsf,
    synthesis_matrix,
)
from ..kernels.statistics import image_statistics
from ..options import DaskOptions, PeaksOptions, RMCleanOptions, RMSynthesisOptions
from .tiling import map_tiles, tile_side, write_array_product

log = logging.getLogger(__name__)

# The peak maps: name -> (unit, description). Each is a variable of peaks.zarr and a FITS product.
PEAK_MAPS = {
    "peak_pi": ("Jy/beam", "peak polarised intensity of the FDF (evaluated at peak_phi)"),
    "peak_pi_debiased": ("Jy/beam", "peak polarised intensity, bias corrected: sqrt(P^2 - 2.3 sigma^2)"),
    "peak_phi": ("rad/m2", "Faraday depth of the peak (the FDF evaluated exactly near the grid's maximum)"),
    "peak_phi_err": ("rad/m2", "error of the peak Faraday depth, FWHM / (2 SNR)"),
    "pol_angle0_deg": ("deg", "intrinsic polarisation angle, derotated to lambda^2 = 0"),
    "pol_angle0_err_deg": ("deg", "error of the intrinsic polarisation angle"),
    "fdf_noise": ("Jy/beam", "noise of the FDF (real or imaginary part)"),
    "snr": ("", "peak polarised intensity over FDF noise"),
    "cc_moment2": ("rad/m2", "second moment of the clean components about their mean depth (Faraday complexity)"),
}
FDF_PARTS = {"real": np.real, "imag": np.imag, "amplitude": np.abs}


def faraday_fits_names(clean: bool) -> list[str]:
    """Names of the FITS products of export_faraday_fits: FDF cubes (dirty, and clean with
    RM-CLEAN) in real, imaginary and amplitude parts, the RMSF table and every peak map."""
    kinds = ["dirty", "clean"] if clean else ["dirty"]
    return [f"fdf_{kind}_{part}" for kind in kinds for part in FDF_PARTS] + ["rmsf"] + list(PEAK_MAPS)


@dataclasses.dataclass
class RMSynthesisResult:
    faraday_grid: dict
    weighting: str
    channels_used: int
    fdf_noise_theoretical: float


@dataclasses.dataclass
class RMCleanResult:
    cutoff: float
    cutoff_sigma: float
    gain: float
    components: int


@dataclasses.dataclass
class PeaksResult:
    from_fdf: str  # "clean" or "dirty": which FDF the peaks were taken from
    rmsf_fwhm: float
    fdf_noise_median: float
    maps: dict

    QA_NAMES: ClassVar[dict] = {"from_fdf": "from"}


def open_fdf(store: str | os.PathLike):
    """An FDF (or peak-map) store as a lazy labelled xarray Dataset."""
    return open_dataset(store, "Faraday")


def _grid_from_store(attrs: dict) -> FaradayGrid:
    """The Faraday grid an FDF store was made with, rebuilt from its attributes."""
    g = attrs["faraday_grid"]
    weights = np.asarray(attrs["channel_weights"], dtype=np.float64)
    return faraday_grid(np.asarray(attrs["freqs_hz"]), weights, dphi=g["dphi"], phi_max=g["phi_max"])


def synthesis_weights(rms_qu: np.ndarray, weighting: str) -> tuple[np.ndarray, np.ndarray]:
    """(weights, sigma) of each channel: sigma the mean of its Q and U plane rms; weights
    1/sigma^2 ('variance') or 1 ('uniform'), 0 for channels without data."""
    rms = rms_qu.astype(np.float64)
    sigma = np.sqrt(0.5 * (rms[:, 0] ** 2 + rms[:, 1] ** 2))
    has_data = np.isfinite(sigma)
    if weighting == "variance" and np.any(sigma[has_data] <= 0):
        # Noise-free planes (a model column, a simulation without noise) have no variance to weight by.
        log.warning("%d channels have Q and U planes without noise; RM synthesis weights the channels uniformly",
                    int(np.sum(sigma[has_data] <= 0)))
        weighting = "uniform"
    if weighting == "variance":
        return np.where(has_data, 1.0 / np.where(has_data, sigma, 1.0) ** 2, 0.0), sigma
    if weighting == "uniform":
        return has_data.astype(np.float64), sigma
    raise ValueError(f"unknown RM synthesis weighting {weighting!r} (uniform or variance)")


# FDF cubes are noise-like complex floats: compression would cost write time and save little, so
# they are stored raw; the clean components, mostly zeros, keep the default compressor.


def rm_synthesis(cube_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                 options: RMSynthesisOptions = RMSynthesisOptions(), dask: DaskOptions = DaskOptions(), *,
                 rule: str = "spectropol") -> RMSynthesisResult:
    """Complex FDF cube (phi, y, x) of the cube's Stokes Q and U, and the RMSF on twice the range.

    weighting: 'uniform', or 'variance' (1/sigma^2 of each channel, sigma the mean of the Q and U
    plane rms measured in the cube). Channels with no data get weight 0 and drop out of the grid.
    """
    import xarray as xr

    cube = open_cube(cube_store)
    require_linear_polarisation(cube, cube_store)
    image = cube.attrs["image"]
    freqs = cube["freq"].values
    weights, sigma = synthesis_weights(cube["rms"].sel(stokes=["Q", "U"]).values, options.weighting)
    try:
        grid = faraday_grid(freqs, weights, dphi=options.dphi_rad_m2, phi_max=options.phi_max_rad_m2,
                            oversample=options.oversample)
    except ValueError as err:
        raise fail(cube_store, str(err)) from None
    nphi, nfreq = len(grid.phi), len(freqs)
    # Q, U, P in; FDF out
    side = tile_side(cube.sizes["y"], cube.sizes["x"], 4 * (3 * nfreq + 4 * nphi), options.chunk_mb,
                     align=stored_chunk(cube))
    matrix = synthesis_matrix(grid)

    def block(q_block, u_block):
        shape = q_block.shape[1:]
        fdf = rm_synthesis_block(q_block.reshape(nfreq, -1), u_block.reshape(nfreq, -1), grid, matrix)
        return fdf.reshape((nphi,) + shape)

    q, u = (cube[image].sel(stokes=s).data for s in ("Q", "U"))
    fdf = map_tiles(block, [q, u], side, (nphi,), np.complex64)
    noise = fdf_noise_theoretical(grid, sigma)
    dataset = xr.Dataset(
        {
            "fdf": (("phi", "y", "x"), fdf, {"units": "Jy/beam", "description": "dirty Faraday dispersion function"}),
            "rmsf": ("phi_rmsf", rmsf(grid, doubled_phi(grid)).astype(np.complex64),
                     {"description": "RMSF on twice the phi range"}),
            "channel_weight": ("freq", weights, {"description": "RM synthesis weight of each channel"}),
        },
        coords={"phi": ("phi", grid.phi, {"units": "rad/m2"}), "phi_rmsf": ("phi_rmsf", doubled_phi(grid),
                                                                            {"units": "rad/m2"}),
                "freq": ("freq", freqs, {"units": "Hz"})},
        attrs={"wcs": cube.attrs["wcs"], "faraday_grid": grid.describe(), "channel_weights": weights.tolist(),
               "freqs_hz": freqs.tolist(),
               "weighting": options.weighting, "fdf_noise_theoretical": noise, "kind": "dirty",
               "provenance": provenance({"cube": str(cube_store)})},
    )
    log.info("RM synthesis: %d channels -> %d depths (%.3g..%.3g rad/m2, step %.3g), RMSF FWHM %.3g rad/m2, tiles %d^2",
             nfreq, nphi, grid.phi[0], grid.phi[-1], grid.dphi, grid.fwhm, side)
    result = RMSynthesisResult(faraday_grid=grid.describe(), weighting=options.weighting,
                               channels_used=int((weights > 0).sum()), fdf_noise_theoretical=noise)
    return write_array_product(dataset, out_store, qa_path, lambda _: result, kind="rm_synthesis", rule=rule, dask=dask,
                               label="rm_synthesis", encoding={"fdf": {"chunks": (nphi, side, side),
                                                                       "compressors": None}})


def rm_clean(fdf_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike,
             options: RMCleanOptions = RMCleanOptions(), dask: DaskOptions = DaskOptions(), *,
             rule: str = "spectropol") -> RMCleanResult:
    """RM-CLEAN every pixel of a dirty FDF store down to cutoff_sigma x the theoretical FDF noise.
    Writes the clean FDF and the clean components (phi, y, x); the residual is not stored, being
    the clean FDF minus the restored components, which faraday_peaks recomputes for the noise."""
    import xarray as xr

    dirty = open_fdf(fdf_store)
    grid = _grid_from_store(dirty.attrs)
    nphi = len(grid.phi)
    if not np.allclose(grid.phi, dirty["phi"].values):
        raise fail(fdf_store, "its phi axis does not match its recorded Faraday grid")
    rmsf_doubled = dirty["rmsf"].values
    cutoff = options.cutoff_sigma * dirty.attrs["fdf_noise_theoretical"]
    side = tile_side(dirty.sizes["y"], dirty.sizes["x"], 8 * nphi * 6,
                     options.chunk_mb)  # in, residual, components, clean, temporaries

    def block(fdf_block):
        shape = fdf_block.shape[1:]
        clean, _, components = rm_clean_block(fdf_block.reshape(nphi, -1), grid, cutoff, gain=options.gain,
                                              max_iter=options.max_iter, rmsf_doubled=rmsf_doubled, want_residual=False)
        return np.stack([clean, components]).reshape((2, nphi) + shape)

    stacked = map_tiles(block, [dirty["fdf"].data], side, (2, nphi), np.complex64)
    labels = {"fdf_clean": "RM-CLEAN restored FDF", "clean_components": "clean components"}
    dataset = xr.Dataset(
        {name: (("phi", "y", "x"), stacked[k], {"units": "Jy/beam", "description": text})
         for k, (name, text) in enumerate(labels.items())} | {"rmsf": dirty["rmsf"]},
        coords={"phi": dirty["phi"], "phi_rmsf": dirty["phi_rmsf"]},
        attrs=dirty.attrs | {"kind": "clean", "clean": {"cutoff": cutoff, "cutoff_sigma": options.cutoff_sigma,
                                                        "gain": options.gain, "max_iter": options.max_iter},
                             "provenance": provenance({"fdf": str(fdf_store)})},
    )
    log.info("RM-CLEAN: cutoff %.3g Jy/beam (%.1f sigma), gain %.2f, tiles %d^2", cutoff, options.cutoff_sigma,
             options.gain, side)

    def summarise(store) -> RMCleanResult:
        components = open_fdf(store)["clean_components"]
        return RMCleanResult(cutoff=cutoff, cutoff_sigma=options.cutoff_sigma, gain=options.gain,
                             components=int((abs(components) > 0).sum().compute()))

    encoding = {"fdf_clean": {"chunks": (nphi, side, side), "compressors": None},
                "clean_components": {"chunks": (nphi, side, side)}}  # sparse: compresses well
    return write_array_product(dataset, out_store, qa_path, summarise, kind="rm_clean", rule=rule, dask=dask,
                               label="rm_clean", encoding=encoding)


def _peaks_block(*arrays, grid: FaradayGrid, sigma_theory: float, cleaned: bool, refined: bool):
    """(nphi, ty, tx) FDF, then the components if ``cleaned``, then Q and U (nchan, ty, tx) if
    ``refined`` -> (len(PEAK_MAPS), ty, tx) float32 maps."""
    fdf, rest = arrays[0], list(arrays[1:])
    nphi, shape = fdf.shape[0], fdf.shape[1:]
    components = rest.pop(0).reshape(nphi, -1) if cleaned else None
    channel_p = None
    if refined:
        q, u = rest
        channel_p = (q.astype(np.float64) + 1j * u.astype(np.float64)).reshape(q.shape[0], -1)
    peaks = peak_maps(fdf.reshape(nphi, -1), grid, components, sigma_theory, channel_p)
    return np.stack([np.asarray(peaks[name], dtype=np.float32) for name in PEAK_MAPS]).reshape((len(PEAK_MAPS),
                                                                                                ) + shape)


def faraday_peaks(fdf_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike,
                  options: PeaksOptions = PeaksOptions(), dask: DaskOptions = DaskOptions(), *,
                  cube_store: str | os.PathLike | None = None, rule: str = "spectropol") -> PeaksResult:
    """Peak maps of the clean FDF (or the dirty one if the store holds no clean FDF).

    With ``cube_store`` (the cube the FDF was made from) each pixel's peak is refined by evaluating
    its FDF exactly from Q and U near the grid's maximum (kernels.faraday.refine_peak), so depths,
    amplitudes and angles do not depend on the grid step; without it, a parabola through the grid.
    """
    import xarray as xr

    store = open_fdf(fdf_store)
    grid = _grid_from_store(store.attrs)
    nphi = len(grid.phi)
    cleaned = "fdf_clean" in store
    inputs = [store["fdf_clean"].data, store["clean_components"].data] if cleaned else [store["fdf"].data]
    bytes_per_pixel = 8 * nphi * 5
    if cube_store is not None:
        cube = open_cube(cube_store)
        freqs = cube["freq"].values
        if len(freqs) != len(grid.lambda2) or not np.allclose(freqs, store.attrs["freqs_hz"], rtol=1e-9, atol=0):
            raise fail(cube_store, f"its channels are not those {fdf_store} was made from")
        image = cube.attrs["image"]
        inputs += [cube[image].sel(stokes=s).data for s in ("Q", "U")]
        # Q, U in; complex128 data and its rotated copy; the peeled components
        bytes_per_pixel += 8 * len(freqs) + 48 * len(freqs) + 24 * nphi
    side = tile_side(store.sizes["y"], store.sizes["x"], bytes_per_pixel, options.chunk_mb)
    block = functools.partial(_peaks_block, grid=grid, sigma_theory=store.attrs["fdf_noise_theoretical"],
                              cleaned=cleaned, refined=cube_store is not None)
    maps = map_tiles(block, inputs, side, (len(PEAK_MAPS),), np.float32)
    sources = {"fdf": str(fdf_store)} | ({"cube": str(cube_store)} if cube_store is not None else {})
    dataset = xr.Dataset(
        {name: (("y", "x"), maps[k], {"units": unit, "description": text})
         for k, (name, (unit, text)) in enumerate(PEAK_MAPS.items())},
        attrs={"wcs": store.attrs["wcs"], "faraday_grid": grid.describe(), "source": "clean" if cleaned else "dirty",
               "peak": "exact" if cube_store is not None else "parabolic",
               "lambda0_sq": grid.lambda0_sq, "provenance": provenance(sources)},
    )

    def summarise(path) -> PeaksResult:
        values = open_fdf(path).load()
        return PeaksResult(from_fdf="clean" if cleaned else "dirty", rmsf_fwhm=grid.fwhm,
                           fdf_noise_median=float(np.nanmedian(values["fdf_noise"].values)),
                           maps={name: image_statistics(values[name].values) for name in PEAK_MAPS})

    return write_array_product(dataset, out_store, qa_path, summarise, kind="faraday_peaks", rule=rule, dask=dask,
                               label="faraday_peaks")


def export_faraday_fits(dirty_store: str | os.PathLike, clean_store: str | os.PathLike | None,
                        peaks_store: str | os.PathLike, out_paths: dict[str, str | os.PathLike]) -> None:
    """FITS products: FDF real, imaginary and amplitude cubes (RA, DEC, FARDEPTH), dirty and clean;
    the RMSF as a table; the peak maps as 2-D images. ``out_paths`` maps every name of
    faraday_fits_names to a file (a missing or unknown name is an error, so that no product goes
    unexported); a cube is written a tile at a time."""
    from astropy.io import fits

    expected = set(faraday_fits_names(clean_store is not None))
    if set(out_paths) != expected:
        raise ValueError(f"FITS paths missing for {sorted(expected - set(out_paths))}, "
                         f"unknown products {sorted(set(out_paths) - expected)}")
    dirty = open_fdf(dirty_store)
    sources = {"dirty": (dirty, "fdf")}
    if clean_store is not None:
        sources["clean"] = (open_fdf(clean_store), "fdf_clean")
    phi = dirty["phi"].values
    for kind, (store, variable) in sources.items():
        for part, function in FDF_PARTS.items():
            keywords = {"SIMPLE": True, "BITPIX": -32, "NAXIS": 3, "NAXIS1": store.sizes["x"],
                        "NAXIS2": store.sizes["y"],
                        "NAXIS3": len(phi)} | store.attrs["wcs"] | fardepth_axis(3, phi)
            keywords |= product_keywords("Jy/beam", f"FDF {kind} {part}", store.attrs["provenance"])
            write_cube_by_tiles(out_paths[f"fdf_{kind}_{part}"], keywords, store[variable], function)
    values = dirty["rmsf"].values
    table = fits.BinTableHDU.from_columns([
        fits.Column("PHI", "1D", "rad/m2", array=dirty["phi_rmsf"].values),
        fits.Column("REAL", "1E", array=values.real), fits.Column("IMAG", "1E", array=values.imag),
        fits.Column("AMPLITUDE", "1E", array=np.abs(values)),
    ], name="RMSF")
    table.header["FWHM"] = (dirty.attrs["faraday_grid"]["rmsf_fwhm"], "rad/m2")
    with atomic_path(out_paths["rmsf"]) as partial:
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(partial)
    peaks = open_fdf(peaks_store)
    for name in PEAK_MAPS:
        write_map(out_paths[name], peaks[name].values, peaks.attrs["wcs"], bunit=peaks[name].attrs["units"], btype=name,
                  provenance=peaks.attrs["provenance"])
