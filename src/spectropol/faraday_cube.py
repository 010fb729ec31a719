"""The Faraday stages on the cube: RM synthesis, RM-CLEAN and peak maps, with Dask over spatial
tiles that hold the whole spectral (or Faraday-depth) axis; memory per task is set by ``chunk_mb``
whatever the number of channels. Products are labelled Zarr stores (phi in rad/m^2) and FITS.
"""

from __future__ import annotations

import functools
import logging
import os

import numpy as np

from .cube import open_cube
from .errors import fail
from .faraday import (FaradayGrid, doubled_phi, faraday_grid, fdf_noise_theoretical, fdf_peak, restore_components,
                      rm_clean_block, rm_synthesis_block, rmsf, robust_fdf_noise, synthesis_matrix)
from .parallel import dask_scheduler, tile_side
from .products import atomic_path, open_dataset, provenance, quiet_zarr_v3, write_qa
from .qa import image_statistics
from .wcs import to_fits_header

log = logging.getLogger(__name__)

PEAK_MAPS = {
    "peak_pi": ("Jy/beam", "peak polarised intensity of the FDF"),
    "peak_pi_debiased": ("Jy/beam", "peak polarised intensity, bias corrected: sqrt(P^2 - 2.3 sigma^2)"),
    "peak_phi": ("rad/m2", "Faraday depth of the peak (parabolic interpolation)"),
    "peak_phi_err": ("rad/m2", "error of the peak Faraday depth, FWHM / (2 SNR)"),
    "pol_angle0_deg": ("deg", "intrinsic polarisation angle, derotated to lambda^2 = 0"),
    "pol_angle0_err_deg": ("deg", "error of the intrinsic polarisation angle"),
    "fdf_noise": ("Jy/beam", "noise of the FDF (real or imaginary part)"),
    "snr": ("", "peak polarised intensity over FDF noise"),
    "cc_moment2": ("rad/m2", "second moment of the clean components about their mean depth (Faraday complexity)"),
}


def _grid_from_store(attrs: dict) -> FaradayGrid:
    """The Faraday grid an FDF store was made with, rebuilt from its attributes."""
    g = attrs["faraday_grid"]
    weights = np.asarray(attrs["channel_weights"], dtype=np.float64)
    return faraday_grid(np.asarray(attrs["freqs_hz"]), weights, dphi=g["dphi"], phi_max=g["phi_max"])


# FDF cubes are noise-like complex floats: compression would cost write time and save little, so
# they are stored raw; the clean components, mostly zeros, keep the default compressor.


def rm_synthesis_cube(cube_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike, *,
                      weighting: str = "variance", dphi: float | None = None, phi_max: float | None = None,
                      oversample: float = 10.0, chunk_mb: float = 256.0, scheduler: str = "threads", nthreads: int = 1) -> dict:
    """Complex FDF cube (phi, y, x) of the cube's Stokes Q and U, and the RMSF on twice the range.

    weighting: 'uniform', or 'variance' (1/sigma^2 of each channel, sigma the mean of the Q and U
    plane rms measured in the cube). Channels with no data get weight 0 and drop out of the grid.
    """
    import dask.array as da
    import xarray as xr

    cube = open_cube(cube_store)
    require_linear_polarisation(cube, cube_store)
    image = cube.attrs["image"]
    freqs = cube["freq"].values
    rms = cube["rms"].sel(stokes=["Q", "U"]).values.astype(np.float64)
    sigma = np.sqrt(0.5 * (rms[:, 0] ** 2 + rms[:, 1] ** 2))
    has_data = np.isfinite(sigma) & (sigma > 0)
    if weighting == "variance":
        weights = np.where(has_data, 1.0 / np.where(has_data, sigma, 1.0) ** 2, 0.0)
    elif weighting == "uniform":
        weights = has_data.astype(np.float64)
    else:
        raise ValueError(f"unknown RM synthesis weighting {weighting!r} (uniform or variance)")
    try:
        grid = faraday_grid(freqs, weights, dphi=dphi, phi_max=phi_max, oversample=oversample)
    except ValueError as err:
        raise fail(cube_store, str(err)) from None
    nphi, nfreq = len(grid.phi), len(freqs)
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    stored = cube[image].encoding.get("chunks", (1, 1, ny, nx))[-1]
    side = tile_side(ny, nx, 4 * (3 * nfreq + 4 * nphi), chunk_mb, align=stored)  # Q, U, P in; FDF out
    q = cube[image].sel(stokes="Q").data.rechunk((nfreq, side, side))
    u = cube[image].sel(stokes="U").data.rechunk((nfreq, side, side))
    matrix = synthesis_matrix(grid)

    def block(q_block, u_block):
        shape = q_block.shape[1:]
        fdf = rm_synthesis_block(q_block.reshape(nfreq, -1), u_block.reshape(nfreq, -1), grid, matrix)
        return fdf.reshape((nphi,) + shape)

    fdf = da.map_blocks(block, q, u, dtype=np.complex64, chunks=((nphi,),) + q.chunks[1:])
    noise = fdf_noise_theoretical(grid, sigma)
    rmsf_doubled = rmsf(grid, doubled_phi(grid))
    dataset = xr.Dataset(
        {
            "fdf": (("phi", "y", "x"), fdf, {"units": "Jy/beam", "description": "dirty Faraday dispersion function"}),
            "rmsf": ("phi_rmsf", rmsf_doubled.astype(np.complex64), {"description": "RMSF on twice the phi range"}),
            "channel_weight": ("freq", weights, {"description": "RM synthesis weight of each channel"}),
        },
        coords={"phi": ("phi", grid.phi, {"units": "rad/m2"}), "phi_rmsf": ("phi_rmsf", doubled_phi(grid), {"units": "rad/m2"}),
                "freq": ("freq", freqs, {"units": "Hz"})},
        attrs={"wcs": cube.attrs["wcs"], "faraday_grid": grid.describe(), "channel_weights": weights.tolist(),
               "freqs_hz": freqs.tolist(),
               "weighting": weighting, "fdf_noise_theoretical": noise, "kind": "dirty",
               "provenance": provenance({"cube": str(cube_store)})},
    )
    log.info("RM synthesis: %d channels -> %d depths (%.3g..%.3g rad/m2, step %.3g), RMSF FWHM %.3g rad/m2, tiles %d^2",
             nfreq, nphi, grid.phi[0], grid.phi[-1], grid.dphi, grid.fwhm, side)
    with dask_scheduler(scheduler, nthreads, "rm_synthesis"), atomic_path(out_store) as partial, quiet_zarr_v3():
        dataset.to_zarr(partial, mode="w", zarr_format=3, consolidated=True,
                        encoding={"fdf": {"chunks": (nphi, side, side), "compressors": None}})
    stats = {"faraday_grid": grid.describe(), "weighting": weighting, "channels_used": int((weights > 0).sum()),
             "fdf_noise_theoretical": noise}
    write_qa(qa_path, "rm_synthesis", stats, rule="rm_synthesis")
    return stats


def require_linear_polarisation(cube, cube_store) -> None:
    """The Faraday stages need Stokes Q and U; say so plainly when the data could not form them."""
    present = cube.attrs.get("stokes_present", ["I", "Q", "U", "V"])
    if not {"Q", "U"} <= set(present):
        raise fail(cube_store, f"holds Stokes {', '.join(present)} only (the MS lacks cross-hand correlations); "
                               "Faraday stages need Q and U")


def open_fdf(store: str | os.PathLike):
    """An FDF (or peak-map) store as a lazy labelled xarray Dataset."""
    return open_dataset(store, "Faraday")


def rm_clean_cube(fdf_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike, *,
                  cutoff_sigma: float = 3.0, gain: float = 0.1, max_iter: int = 1000, chunk_mb: float = 256.0,
                  scheduler: str = "threads", nthreads: int = 1) -> dict:
    """RM-CLEAN every pixel of a dirty FDF store down to cutoff_sigma x the theoretical FDF noise.
    Writes the clean FDF and the clean components (phi, y, x); the residual is not stored, being
    the clean FDF minus the restored components, which faraday_peaks recomputes for the noise."""
    import dask.array as da
    import xarray as xr

    dirty = open_fdf(fdf_store)
    grid = _grid_from_store(dirty.attrs)
    nphi = len(grid.phi)
    if not np.allclose(grid.phi, dirty["phi"].values):
        raise fail(fdf_store, "its phi axis does not match its recorded Faraday grid")
    rmsf_doubled = dirty["rmsf"].values
    cutoff = cutoff_sigma * dirty.attrs["fdf_noise_theoretical"]
    ny, nx = dirty.sizes["y"], dirty.sizes["x"]
    side = tile_side(ny, nx, 8 * nphi * 6, chunk_mb)  # in, residual, components, clean, temporaries
    fdf = dirty["fdf"].data.rechunk((nphi, side, side))

    def block(fdf_block):
        shape = fdf_block.shape[1:]
        clean, _, components = rm_clean_block(fdf_block.reshape(nphi, -1), grid, cutoff, gain=gain, max_iter=max_iter,
                                              rmsf_doubled=rmsf_doubled, want_residual=False)
        return np.stack([clean, components]).reshape((2, nphi) + shape)

    stacked = da.map_blocks(block, fdf, dtype=np.complex64, new_axis=0, chunks=((2,), (nphi,)) + fdf.chunks[1:])
    labels = {"fdf_clean": "RM-CLEAN restored FDF", "clean_components": "clean components"}
    dataset = xr.Dataset(
        {name: (("phi", "y", "x"), stacked[k], {"units": "Jy/beam", "description": text}) for k, (name, text) in enumerate(labels.items())}
        | {"rmsf": dirty["rmsf"]},
        coords={"phi": dirty["phi"], "phi_rmsf": dirty["phi_rmsf"]},
        attrs=dirty.attrs | {"kind": "clean", "clean": {"cutoff": cutoff, "cutoff_sigma": cutoff_sigma, "gain": gain, "max_iter": max_iter},
                             "provenance": provenance({"fdf": str(fdf_store)})},
    )
    log.info("RM-CLEAN: cutoff %.3g Jy/beam (%.1f sigma), gain %.2f, tiles %d^2", cutoff, cutoff_sigma, gain, side)
    with dask_scheduler(scheduler, nthreads, "rm_clean"), atomic_path(out_store) as partial, quiet_zarr_v3():
        dataset.to_zarr(partial, mode="w", zarr_format=3, consolidated=True,
                        encoding={"fdf_clean": {"chunks": (nphi, side, side), "compressors": None},
                                  "clean_components": {"chunks": (nphi, side, side)}})  # sparse: compresses well
    components = open_fdf(out_store)["clean_components"]
    n_components = int((abs(components) > 0).sum().compute())
    stats = {"cutoff": cutoff, "cutoff_sigma": cutoff_sigma, "gain": gain, "components": n_components}
    write_qa(qa_path, "rm_clean", stats, rule="rm_clean")
    return stats


def _peak_block(fdf, components, grid: FaradayGrid, sigma_theory: float):
    nphi = fdf.shape[0]
    shape = fdf.shape[1:]
    fdf2 = fdf.reshape(nphi, -1)
    if components is not None:
        components = components.reshape(nphi, -1)
        sigma = robust_fdf_noise(fdf2 - restore_components(components, grid))  # noise of the residual
    else:
        sigma = np.full(fdf2.shape[1], sigma_theory)
    peaks = fdf_peak(fdf2, grid, sigma)
    if components is not None:
        weight = np.abs(components).astype(np.float64)
        total = weight.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (weight * grid.phi[:, None]).sum(axis=0) / total
            peaks["cc_moment2"] = np.sqrt((weight * (grid.phi[:, None] - mean) ** 2).sum(axis=0) / total)
    else:
        peaks["cc_moment2"] = np.full(fdf2.shape[1], np.nan)
    return np.stack([np.asarray(peaks[name], dtype=np.float32) for name in PEAK_MAPS]).reshape((len(PEAK_MAPS),) + shape)


def faraday_peaks(fdf_store: str | os.PathLike, out_store: str | os.PathLike, qa_path: str | os.PathLike, *,
                  chunk_mb: float = 256.0, scheduler: str = "threads", nthreads: int = 1) -> dict:
    """Peak maps of the clean FDF (or the dirty one if the store holds no clean FDF)."""
    import dask.array as da
    import xarray as xr

    store = open_fdf(fdf_store)
    grid = _grid_from_store(store.attrs)
    nphi = len(grid.phi)
    ny, nx = store.sizes["y"], store.sizes["x"]
    side = tile_side(ny, nx, 8 * nphi * 5, chunk_mb)
    cleaned = "fdf_clean" in store
    fdf = (store["fdf_clean"] if cleaned else store["fdf"]).data.rechunk((nphi, side, side))
    sigma_theory = store.attrs["fdf_noise_theoretical"]
    if cleaned:
        components = store["clean_components"].data.rechunk((nphi, side, side))
        block = functools.partial(_peak_block, grid=grid, sigma_theory=sigma_theory)
        maps = da.map_blocks(block, fdf, components, dtype=np.float32, chunks=((len(PEAK_MAPS),),) + fdf.chunks[1:])
    else:
        block = functools.partial(_peak_block, components=None, grid=grid, sigma_theory=sigma_theory)
        maps = da.map_blocks(block, fdf, dtype=np.float32, chunks=((len(PEAK_MAPS),),) + fdf.chunks[1:])
    with dask_scheduler(scheduler, nthreads, "faraday_peaks"):
        values = maps.compute()
    dataset = xr.Dataset(
        {name: (("y", "x"), values[k], {"units": unit, "description": text}) for k, (name, (unit, text)) in enumerate(PEAK_MAPS.items())},
        attrs={"wcs": store.attrs["wcs"], "faraday_grid": grid.describe(), "source": "clean" if cleaned else "dirty",
               "lambda0_sq": grid.lambda0_sq, "provenance": provenance({"fdf": str(fdf_store)})},
    )
    with atomic_path(out_store) as partial, quiet_zarr_v3():
        dataset.to_zarr(partial, mode="w", zarr_format=3, consolidated=True)
    stats = {"from": "clean" if cleaned else "dirty", "rmsf_fwhm": grid.fwhm,
             "fdf_noise_median": float(np.nanmedian(values[list(PEAK_MAPS).index("fdf_noise")])),
             "maps": {name: image_statistics(values[k]) for k, name in enumerate(PEAK_MAPS)}}
    write_qa(qa_path, "faraday_peaks", stats, rule="faraday_peaks")
    return stats


def _fardepth_axis(phi: np.ndarray) -> dict:
    return {"CTYPE3": "FARDEPTH", "CRVAL3": float(phi[0]), "CDELT3": float(phi[1] - phi[0]) if len(phi) > 1 else 1.0,
            "CRPIX3": 1.0, "CUNIT3": "rad/m2"}


def export_faraday_fits(dirty_store: str | os.PathLike, clean_store: str | os.PathLike | None, peaks_store: str | os.PathLike,
                        out_paths: dict[str, str | os.PathLike]) -> None:
    """FITS products: FDF real, imaginary and amplitude cubes (RA, DEC, FARDEPTH), dirty and clean;
    the RMSF as a table; the peak maps as 2-D images. ``out_paths`` maps product names
    (fdf_dirty_real, ..., rmsf, peak_pi, ...) to files; a cube is written a tile at a time."""
    from astropy.io import fits

    dirty = open_fdf(dirty_store)
    sources = {"dirty": (dirty, "fdf")}
    if clean_store is not None:
        sources["clean"] = (open_fdf(clean_store), "fdf_clean")
    phi = dirty["phi"].values
    for kind, (store, variable) in sources.items():
        for part, function in (("real", np.real), ("imag", np.imag), ("amplitude", np.abs)):
            name = f"fdf_{kind}_{part}"
            if name not in out_paths:
                continue
            keywords = {"SIMPLE": True, "BITPIX": -32, "NAXIS": 3, "NAXIS1": store.sizes["x"], "NAXIS2": store.sizes["y"],
                        "NAXIS3": len(phi)} | store.attrs["wcs"] | _fardepth_axis(phi)
            keywords |= {"BUNIT": "Jy/beam", "BTYPE": f"FDF {kind} {part}", "ORIGIN": "spectropol",
                         "PROVENANCE": store.attrs["provenance"]}
            _write_fits_by_tiles(out_paths[name], to_fits_header(keywords), store[variable], function)
    if "rmsf" in out_paths:
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
        if name not in out_paths:
            continue
        keywords = peaks.attrs["wcs"] | {"BUNIT": peaks[name].attrs["units"], "BTYPE": name, "ORIGIN": "spectropol",
                                         "PROVENANCE": peaks.attrs["provenance"]}
        with atomic_path(out_paths[name]) as partial:
            fits.PrimaryHDU(peaks[name].values.astype(np.float32), header=to_fits_header(keywords)).writeto(partial)


def _write_fits_by_tiles(path, header, variable, function) -> None:
    """Write a (phi, y, x) dask-backed variable to FITS one spatial tile at a time through a memory
    map, so that memory stays at one tile (the FITS axis order is the reverse of ours)."""
    from astropy.io import fits

    shape = variable.shape
    with atomic_path(path) as partial:
        header = header.copy()
        header_bytes = len(header.tostring())
        data_bytes = int(np.prod(shape)) * 4
        padded = data_bytes + (-data_bytes) % 2880
        with open(partial, "wb") as handle:
            handle.write(header.tostring().encode("ascii"))
            handle.seek(header_bytes + padded - 1)
            handle.write(b"\0")
        with fits.open(partial, mode="update", memmap=True) as hdus:
            data = hdus[0].data
            for slices in _tiles(variable):
                data[slices] = function(variable[slices].values).astype(np.float32)


def _tiles(variable):
    """Slices of each dask chunk of a variable."""
    chunks = variable.chunks
    edges = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    import itertools

    for index in itertools.product(*(range(len(c)) for c in chunks)):
        yield tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, index))
