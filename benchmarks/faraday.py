"""The Faraday-depth stage against RM-Tools on the same FITS input and the same Faraday-depth grid,
in one run: `spectropol faraday-depth` straight from the FITS files (RM synthesis, RM-CLEAN and peak
maps in one pass, every product written) against rmsynth3d and rmclean3d; RM-CLEAN both as
rmclean3d runs it (every pixel whose peak reaches the cutoff) and as the workflow runs it by default
(inside the 5-sigma mask); the FDF of the kept pixels against rmsynth3d's; the synthesis kernel
against a plain complex64 matrix product of the same shapes; peak memory at 64, 256 and 1024
channels.

    .venv/bin/python benchmarks/faraday.py            # 64 channels x 512 x 512, phi -200..200 step 1
    .venv/bin/python benchmarks/faraday.py --quick    # 32 channels x 128 x 128
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import machine, write_results
from spectropol.io.stores import store_bytes

PHI_MAX, DPHI = 200.0, 1.0
SYNTH_REPEATS = 3


def median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """(median wall time, largest peak RSS) of repeated runs of one command."""
    return float(np.median([wall for wall, _ in runs])), max(peak for _, peak in runs)


def make_cube(folder: Path, nchan: int, npix: int, sky: str = "diffuse", seed: int = 1,
              fits_files: bool = True) -> tuple[Path, np.ndarray]:
    """A Q/U cube (1.0-1.5 GHz) as a Zarr cube and as FITS files + frequency list for RM-Tools:
    noise and 40 polarised point sources ('points'), plus, with 'diffuse', a Galactic-foreground-like
    polarised screen over the whole field (smooth random amplitude of 5-30 sigma, RM varying
    smoothly over +-50 rad/m^2), where every pixel has something to clean."""
    from astropy.io import fits

    from spectropol.io.cube import write_cube
    from spectropol.io.wcs import celestial_header
    from spectropol.kernels.faraday import lambda_squared

    rng = np.random.default_rng(seed)
    freqs = np.linspace(1.0e9, 1.5e9, nchan)
    sigma = 1e-3
    q = (sigma * rng.standard_normal((nchan, npix, npix))).astype(np.float32)
    u = (sigma * rng.standard_normal((nchan, npix, npix))).astype(np.float32)
    l2 = lambda_squared(freqs)
    for k, (y, x) in enumerate(rng.integers(8, npix - 8, (40, 2))):
        pol = rng.uniform(0.01, 0.1) * np.exp(2j * (rng.uniform(0, np.pi) + rng.uniform(-150, 150) * l2))
        q[:, y, x] += pol.real
        u[:, y, x] += pol.imag
    if sky == "diffuse":
        from scipy.ndimage import gaussian_filter

        def smooth_field(scale):
            field = gaussian_filter(rng.standard_normal((npix, npix)), npix / 16)
            return (field - field.min()) / (field.max() - field.min()) * scale

        amplitude = sigma * (5 + smooth_field(25))
        rm = smooth_field(100) - 50
        angle = smooth_field(np.pi)
        for c in range(nchan):
            pol = amplitude * np.exp(2j * (angle + rm * l2[c]))
            q[c] += pol.real.astype(np.float32)
            u[c] += pol.imag.astype(np.float32)
    data = np.zeros((nchan, 4, npix, npix), np.float32)
    data[:, 1], data[:, 2] = q, u
    cube = folder / f"cube{nchan}.zarr"
    write_cube(cube, data, freqs, celestial_header(np.deg2rad(60.0), np.deg2rad(-30.0), npix, npix, np.deg2rad(0.001)),
               rms=np.full((nchan, 4), sigma, np.float32), chunk=256)
    del data
    if not fits_files:
        return cube, freqs
    header = fits.Header({"CTYPE1": "RA---SIN", "CRVAL1": 60.0, "CDELT1": -0.001, "CRPIX1": npix / 2, "CUNIT1": "deg",
                          "CTYPE2": "DEC--SIN", "CRVAL2": -30.0, "CDELT2": 0.001, "CRPIX2": npix / 2, "CUNIT2": "deg",
                          "CTYPE3": "FREQ", "CRVAL3": freqs[0], "CDELT3": freqs[1] - freqs[0], "CRPIX3": 1.0,
                          "CUNIT3": "Hz",
                          "BUNIT": "Jy/beam"})
    fits.PrimaryHDU(q, header).writeto(folder / f"Q{nchan}.fits", overwrite=True)
    fits.PrimaryHDU(u, header).writeto(folder / f"U{nchan}.fits", overwrite=True)
    np.savetxt(folder / f"freqs{nchan}.dat", freqs)
    return cube, freqs


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall time (s) and peak RSS (MB) of a command, from GNU time."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return wall, float(result.stderr.strip().splitlines()[-1]) / 1024.0


def step(args) -> None:
    """The one pass alone from a cube store (called through timed(), for the memory ladder)."""
    from spectropol.options import DaskOptions, FaradayProductsOptions, RMSynthesisOptions
    from spectropol.stages.faraday import faraday_depth

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    synthesis = RMSynthesisOptions(weighting="uniform", dphi_rad_m2=DPHI, phi_max_rad_m2=PHI_MAX,
                                   chunk_mb=args.chunk_mb)
    faraday_depth(args.input, {"peaks": out / "peaks.zarr", "candidates": out / "fdf_candidates.zarr"},
                  out / "qa.json", synthesis, None, FaradayProductsOptions(), DaskOptions(threads=args.threads))


def clean_agreement(ours: Path, folder: Path) -> dict:
    """Our clean FDF (RM-CLEAN of every pixel above the cutoff, as rmclean3d) against rmclean3d's at
    the pixels we keep: the largest difference as a fraction of rmclean3d's peak |FDF|, and the
    median of each spectrum's largest difference over its own peak."""
    import xarray as xr
    from astropy.io import fits

    if (folder / "rmt_FDF_clean.fits").exists():
        with fits.open(folder / "rmt_FDF_clean.fits") as hdus:
            theirs = hdus[0].data + 1j * hdus[1].data
    else:
        theirs = fits.getdata(folder / "rmt_FDF_clean_real.fits") + 1j * fits.getdata(folder / "rmt_FDF_clean_im.fits")
    kept = xr.open_zarr(ours)
    y, x = kept["y"].values, kept["x"].values
    if not len(y):
        return {"pixels_compared": 0}
    mine, their = kept["fdf_clean"].values, theirs[:, y, x].T
    each = np.abs(mine - their).max(axis=1) / np.abs(their).max(axis=1)
    return {"pixels_compared": int(len(y)),
            "max_abs_difference_over_peak": float(np.abs(mine - their).max() / np.abs(theirs).max()),
            "median_per_spectrum_difference_over_its_peak": float(np.median(each))}


def spectropol_command(bindir: Path, nchan: int, out: str, threads: int, chunk_mb: float, clean: str) -> list[str]:
    """`spectropol faraday-depth` on the FITS files as RM-Tools reads them: 'none' (no RM-CLEAN),
    'all' (every pixel whose peak reaches the cutoff, as rmclean3d) or 'mask' (the default 5-sigma mask)."""
    command = [str(bindir / "spectropol"), "faraday-depth", out, f"{out}/qa.json", "--q", f"Q{nchan}.fits",
               "--u", f"U{nchan}.fits", "--freqs", f"freqs{nchan}.dat", "--weighting", "uniform",
               "--dphi-rad-m2", str(DPHI), "--phi-max-rad-m2", str(PHI_MAX), "--chunk-mb", str(chunk_mb),
               "--threads", str(threads), "--cutoff-sigma", "3"]
    return command + {"none": ["--no-clean"], "all": ["--mask-sigma", "0"], "mask": []}[clean]


def fdf_agreement(ours: Path, real_fits: Path, imag_fits: Path) -> dict:
    """Largest difference between our kept FDF spectra and rmsynth3d's FDF at the same pixels,
    as a fraction of rmsynth3d's largest |FDF|."""
    import xarray as xr
    from astropy.io import fits

    theirs = fits.getdata(real_fits) + 1j * fits.getdata(imag_fits)  # (phi, y, x)
    kept = xr.open_zarr(ours)
    y, x = kept["y"].values, kept["x"].values
    difference = np.abs(kept["fdf_dirty"].values - theirs[:, y, x].T).max() if len(y) else float("nan")
    return {"pixels_compared": int(len(y)), "max_abs_difference_over_peak": float(difference / np.abs(theirs).max())}


def kernel_efficiency(cube: Path, freqs: np.ndarray, repeats: int = 3) -> dict:
    """The synthesis kernel (rm_synthesis_rows by the pass's own route, synthesis_operator's
    choice: on this grid SymmetricSynthesis) on the whole image in memory against numpy's complex64
    matmul of the same shapes, in whichever orientation numpy does faster. Both on one BLAS
    thread, as each of the pass's Dask threads synthesises its tile (with two, the plain matmul used
    both cores and the symmetric route's 512-row products one: 51% "of the rate" at this commit's
    first run, where per core it is faster). Both write into arrays made once, as the Faraday pass
    does (its Scratch): a fresh 0.8 GB product is 200,000 page faults, which on these machines cost
    as much as the product itself and varied the ratio between runs (92% and 54% on the same code)."""
    import xarray as xr
    from threadpoolctl import threadpool_limits

    from spectropol.kernels.faraday import (
        Scratch,
        faraday_grid,
        rm_synthesis_rows,
        synthesis_matrix,
        synthesis_operator,
    )

    data = xr.open_zarr(cube)["dirty"]
    nchan = len(freqs)
    q = data.sel(stokes="Q").values.reshape(nchan, -1)
    u = data.sel(stokes="U").values.reshape(nchan, -1)
    grid = faraday_grid(freqs, dphi=DPHI, phi_max=PHI_MAX)
    matrix, operator, scratch = synthesis_matrix(grid), synthesis_operator(grid), Scratch()
    p = (q + 1j * u).astype(np.complex64)
    rows = np.empty((p.shape[1], matrix.shape[0]), np.complex64)  # the kernel's layout, (npix, nphi)
    columns = np.empty((matrix.shape[0], p.shape[1]), np.complex64)
    work = np.empty(p.size, np.complex64)
    for touched in (rows, columns, work):
        touched.fill(0)
    best_kernel = best_matmul = np.inf
    with threadpool_limits(1, user_api="blas"):
        for _ in range(repeats):
            t = time.perf_counter()
            rm_synthesis_rows(q, u, grid, operator, rows, work, scratch)
            best_kernel = min(best_kernel, time.perf_counter() - t)
            for product in (lambda: np.matmul(matrix, p, out=columns), lambda: np.matmul(p.T, matrix.T, out=rows)):
                t = time.perf_counter()
                product()
                best_matmul = min(best_matmul, time.perf_counter() - t)
    flops = 8.0 * matrix.shape[0] * nchan * p.shape[1]
    return {"route": type(operator).__name__, "kernel_s": best_kernel, "matmul_s": best_matmul, "kernel_gflops": flops / best_kernel / 1e9,
            "matmul_gflops": flops / best_matmul / 1e9, "fraction_of_matmul_rate": best_matmul / best_kernel}


TILE_PIXELS = 1024  # the pass's tile on the rerun benchmark's cube (32^2: 256 channels x 1,259 depths, 256 MB)


def fourier_route(repeats: int = 3, npix: int = 128) -> dict:
    """The synthesis routes side by side where the pass takes the non-uniform FFT: a LOFAR-like
    band (256 channels, 120-168 MHz) on RM-Tools' default grid (FWHM/10), noise Q and U of
    ``npix``^2 in memory, tiles of TILE_PIXELS, one thread: FourierSynthesis against the product
    the pass would otherwise take (SymmetricSynthesis) through the same rm_synthesis_rows, and the
    FFT route's largest difference from it over the FDF's peak. (This benchmark's own grid, 64
    channels at 1 rad/m^2, takes the product.)"""
    from threadpoolctl import threadpool_limits

    from spectropol.kernels.faraday import (
        FourierSynthesis,
        Scratch,
        faraday_grid,
        rm_synthesis_rows,
        symmetric_synthesis,
        synthesis_operator,
    )

    freqs = np.linspace(120e6, 168e6, 256)
    grid = faraday_grid(freqs)
    fourier, matrix = synthesis_operator(grid), symmetric_synthesis(grid)
    assert isinstance(fourier, FourierSynthesis)
    rng = np.random.default_rng(5)
    q, u = (rng.standard_normal((len(freqs), npix * npix)).astype(np.float32) for _ in range(2))
    source = np.exp(2j * 17.3 * grid.lambda2)  # one bright pixel, for the error's scale
    q[:, 0] += 100 * source.real.astype(np.float32)
    u[:, 0] += 100 * source.imag.astype(np.float32)
    rows = {name: np.zeros((npix * npix, len(grid.phi)), np.complex64) for name in ("fourier", "matrix")}
    work, scratch = np.zeros(q.size, np.complex64), Scratch()
    best = {"fourier": np.inf, "matrix": np.inf}
    with threadpool_limits(1, user_api="blas"):
        for _ in range(repeats):
            for name, operator in (("fourier", fourier), ("matrix", matrix)):
                t = time.perf_counter()
                for first in range(0, npix * npix, TILE_PIXELS):  # tiles of the pass's size
                    block = slice(first, first + TILE_PIXELS)
                    rm_synthesis_rows(q[:, block], u[:, block], grid, operator, rows[name][block], work, scratch)
                best[name] = min(best[name], time.perf_counter() - t)
    difference = np.abs(rows["fourier"] - rows["matrix"]).max() / np.abs(rows["matrix"]).max()
    return {"nchan": len(freqs), "nphi": len(grid.phi), "npix": npix * npix, "band_cells": fourier.band,
            "fft_length": fourier.fft_length, "fourier_s": best["fourier"], "matrix_s": best["matrix"],
            "speedup": best["matrix"] / best["fourier"], "max_difference_over_peak": float(difference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sky", choices=("diffuse", "points"), default="diffuse",
                        help="diffuse: a polarised foreground over the whole field (default); points: sources on noise")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-mb", type=float, default=128.0)
    parser.add_argument("--ladder", action=argparse.BooleanOptionalAction, default=True,
                        help="peak memory at 64, 256 and 1024 channels (the longest part; once per batch suffices)")
    parser.add_argument("--step", choices=("synth", "clean", "memory"))
    parser.add_argument("--input")
    parser.add_argument("--q")
    parser.add_argument("--u")
    parser.add_argument("--freqs")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.step:
        return step(args)

    nchan, npix = (32, 128) if args.quick else (64, 512)
    me = [sys.executable, str(Path(__file__).resolve()), "--threads", str(args.threads), "--chunk-mb",
          str(args.chunk_mb)]
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="spectropol-faraday-") as tmp:
        tmp = Path(tmp)
        cube, freqs = make_cube(tmp, nchan, npix, args.sky)
        results = {"case": {"sky": args.sky, "channels": nchan, "npix": npix, "phi_max": PHI_MAX, "dphi": DPHI,
                            "threads": args.threads, "chunk_mb": args.chunk_mb, "weighting": "uniform",
                            "cutoff": "3 sigma (theoretical FDF noise)", "input": "FITS Q, U cubes + frequency file"}}
        # The synthesis comparison, a few seconds against about 50, is the median of SYNTH_REPEATS runs
        # of each, taken in turn: one run of ours varied by 0.4 s (of 2.4) between batches.
        runs = {"none": [], "rmsynth3d": []}
        for _ in range(SYNTH_REPEATS):
            runs["none"].append(timed(spectropol_command(bindir, nchan, "none", args.threads, args.chunk_mb, "none"),
                                      tmp))
            runs["rmsynth3d"].append(timed([str(bindir / "rmsynth3d"), f"Q{nchan}.fits", f"U{nchan}.fits",
                                            f"freqs{nchan}.dat", "-l", str(PHI_MAX), "-d", str(DPHI), "-w", "uniform",
                                            "-o", "rmt_"], tmp))
        results["synthesis_runs_s"] = {k: [round(w, 2) for w, _ in v] for k, v in runs.items()}
        ours = {"none": median_run(runs["none"])}
        ours |= {kind: timed(spectropol_command(bindir, nchan, kind, args.threads, args.chunk_mb, kind), tmp)
                 for kind in ("all", "mask")}
        noise = json.loads((tmp / "none/qa.json").read_text())["fdf_noise_theoretical"]
        rmtools_synth = median_run(runs["rmsynth3d"])
        # RM-Tools' default, serial: its --ncores pool (schwimmbad) took over 10 min on 128^2 where
        # the serial loop takes about 15 s.
        rmtools_clean = timed([str(bindir / "rmclean3d"), "rmt_FDF_real_dirty.fits", "rmt_RMSF_real.fits", "-c",
                               f"{3.0 * noise:.6g}", "-o", "rmt_"], tmp)
        results["agreement"] = fdf_agreement(tmp / "none/fdf_candidates.zarr", tmp / "rmt_FDF_real_dirty.fits",
                                             tmp / "rmt_FDF_im_dirty.fits")
        results["clean_agreement"] = clean_agreement(tmp / "all/fdf_candidates.zarr", tmp)
        results["clean"] = {kind: json.loads((tmp / kind / "qa.json").read_text())["clean"] for kind in ("all", "mask")}
        ours_bytes = {kind: sum(store_bytes(p) for p in (tmp / kind).glob("*.zarr")) for kind in ours}
        rmt_bytes = {kind: sum(f.stat().st_size for f in tmp.glob(f"rmt_*{kind}*.fits")) for kind in ("dirty", "clean")}
        results["wall_s"] = {"spectropol_synthesis_peaks": ours["none"][0], "rmtools_rmsynth3d": rmtools_synth[0],
                             "spectropol_synthesis_clean_peaks": ours["all"][0],
                             "spectropol_synthesis_masked_clean_peaks": ours["mask"][0],
                             "rmtools_rmclean3d": rmtools_clean[0],
                             "spectropol_clean_increment": ours["all"][0] - ours["none"][0],
                             "spectropol_masked_clean_increment": ours["mask"][0] - ours["none"][0]}
        results["peak_rss_mb"] = {"spectropol_synthesis_peaks": ours["none"][1], "rmtools_rmsynth3d": rmtools_synth[1],
                                  "spectropol_synthesis_clean_peaks": ours["all"][1],
                                  "spectropol_synthesis_masked_clean_peaks": ours["mask"][1],
                                  "rmtools_rmclean3d": rmtools_clean[1]}
        results["bytes_written"] = {"spectropol_synthesis_peaks": ours_bytes["none"],
                                    "spectropol_synthesis_clean_peaks": ours_bytes["all"],
                                    "spectropol_synthesis_masked_clean_peaks": ours_bytes["mask"],
                                    "rmtools_rmsynth3d": rmt_bytes["dirty"], "rmtools_rmclean3d": rmt_bytes["clean"]}
        w = results["wall_s"]
        results["speedup"] = {
            "synthesis_peaks_vs_rmsynth3d": rmtools_synth[0] / ours["none"][0],
            "clean_increment_vs_rmclean3d": rmtools_clean[0] / max(w["spectropol_clean_increment"], 1e-3),
            "masked_clean_increment_vs_rmclean3d": rmtools_clean[0] / max(w["spectropol_masked_clean_increment"], 1e-3),
            "whole_vs_rmsynth3d_plus_rmclean3d": (rmtools_synth[0] + rmtools_clean[0]) / ours["all"][0]}
        results["kernel"] = kernel_efficiency(cube, freqs)
        results["fourier_route"] = fourier_route()

        memory = {}
        for channels in (64, 256, 1024) if args.ladder else ():
            ladder, _ = make_cube(tmp, channels, npix, args.sky, fits_files=False)
            out = tmp / f"memory{channels}"
            memory[channels] = timed(me + ["--step", "memory", "--input", str(ladder), "--output", str(out)], tmp)[1]
            shutil.rmtree(out)
            shutil.rmtree(ladder)
        results["one_pass_peak_rss_mb_by_channels"] = memory
        results["machine"] = machine()

    w, r, k, b, x, f = (results[key] for key in ("wall_s", "peak_rss_mb", "kernel", "bytes_written", "speedup",
                                                 "fourier_route"))
    mem_rows = "\n".join(f"| {c} | {m:.0f} |" for c, m in memory.items())
    agreement = results["agreement"]
    table = f"""
## Faraday depth, {args.sky} sky (benchmarks/faraday.py --sky {args.sky}{' --quick' if args.quick else ''})

{"A polarised foreground over the whole field (every pixel to clean) plus 40 point sources on noise" if args.sky == "diffuse" else "40 polarised point sources on noise (few pixels to clean)"};
{nchan} channels x {npix}^2 as FITS Q and U cubes with a frequency file (RM-Tools' input), phi -{PHI_MAX:.0f}..{PHI_MAX:.0f}
step {DPHI} rad/m^2, uniform weights, RM-CLEAN to 3 sigma; {args.threads} cores for spectropol (Dask threads, tiles of
{args.chunk_mb:.0f} MB), RM-Tools as it runs by default (rmsynth3d vectorised, rmclean3d serial); {results['machine']['platform']}.
Each time is a whole process (synthesis: the median of {SYNTH_REPEATS} runs each, taken in turn; RM-CLEAN: one run): start, reading the FITS files, every product written (spectropol:
`spectropol faraday-depth --q Q.fits --u U.fits --freqs freqs.dat`, its peak maps, RMSF and the
candidates' FDF spectra; RM-Tools: its FDF and RMSF FITS cubes). RM-CLEAN is timed as the pass with it
less the pass without, both as rmclean3d cleans (every pixel whose peak reaches the cutoff,
`--mask-sigma 0`: {results['clean']['all']['pixels_cleaned']} pixels, {results['clean']['all']['components']} components) and as the workflow does by default
(inside the 5-sigma mask: {results['clean']['mask']['pixels_cleaned']} pixels, {results['clean']['mask']['components']} components).

| process | spectropol (s) | RM-Tools (s) | speed-up | spectropol peak (MB) | RM-Tools peak (MB) | spectropol written (MB) | RM-Tools written (MB) |
|---|---|---|---|---|---|---|---|
| RM synthesis + peaks (spectropol, --no-clean) vs rmsynth3d | {w['spectropol_synthesis_peaks']:.1f} | {w['rmtools_rmsynth3d']:.1f} | {x['synthesis_peaks_vs_rmsynth3d']:.1f}x | {r['spectropol_synthesis_peaks']:.0f} | {r['rmtools_rmsynth3d']:.0f} | {b['spectropol_synthesis_peaks'] / 1e6:.0f} | {b['rmtools_rmsynth3d'] / 1e6:.0f} |
| RM-CLEAN of every pixel above the cutoff (increment) vs rmclean3d | {w['spectropol_clean_increment']:.1f} | {w['rmtools_rmclean3d']:.1f} | {x['clean_increment_vs_rmclean3d']:.1f}x | {r['spectropol_synthesis_clean_peaks']:.0f} | {r['rmtools_rmclean3d']:.0f} | {b['spectropol_synthesis_clean_peaks'] / 1e6:.0f} | {b['rmtools_rmclean3d'] / 1e6:.0f} |
| RM-CLEAN inside the 5-sigma mask, the default (increment) vs rmclean3d | {w['spectropol_masked_clean_increment']:.1f} | {w['rmtools_rmclean3d']:.1f} | {x['masked_clean_increment_vs_rmclean3d']:.1f}x | {r['spectropol_synthesis_masked_clean_peaks']:.0f} | | {b['spectropol_synthesis_masked_clean_peaks'] / 1e6:.0f} | |
| the whole: synthesis, RM-CLEAN of every pixel, peaks vs rmsynth3d + rmclean3d | {w['spectropol_synthesis_clean_peaks']:.1f} | {w['rmtools_rmsynth3d'] + w['rmtools_rmclean3d']:.1f} | {x['whole_vs_rmsynth3d_plus_rmclean3d']:.1f}x | | | | |

FDF of the {agreement['pixels_compared']} pixels spectropol keeps (local maxima of peak PI with SNR >= 5) against rmsynth3d's at the same pixels:
largest difference {agreement['max_abs_difference_over_peak']:.1e} of rmsynth3d's peak |FDF|. Clean FDF (every pixel
cleaned above the cutoff) of the same pixels against rmclean3d's: largest difference
{results['clean_agreement'].get('max_abs_difference_over_peak', float('nan')):.1e} of rmclean3d's peak |FDF|, median over the spectra of the largest
difference over that spectrum's own peak {results['clean_agreement'].get('median_per_spectrum_difference_over_its_peak', float('nan')):.1e}.

Synthesis kernel (in memory, whole image as one block, FDF as rows, both products into arrays made once, one
thread each as the pass's tiles run; the pass's route, {k['route']}): {k['kernel_s']:.2f} s = {k['kernel_gflops']:.1f} GFLOP/s of the complex product's operations against
a plain complex64 matmul of the same shapes (the faster orientation) at {k['matmul_gflops']:.1f} GFLOP/s: **{100 * k['fraction_of_matmul_rate']:.0f}% of the matmul rate**.
(On this grid, symmetric about 0, the pass synthesises by the product as two real ones of half the depths,
F(-phi) = conj(F_Q - i F_U), hence above 100% where so. On finer grids it takes the non-uniform FFT
where cheaper: {f['nchan']} channels 120-168 MHz on RM-Tools' default grid, {f['nphi']} depths, {f['npix']:,} noise pixels,
one thread: {f['fourier_s']:.2f} s against that product's {f['matrix_s']:.2f} s, **{f['speedup']:.2f}x**, spreading onto
{f['band_cells']} of {f['fft_length']} cells; largest difference {f['max_difference_over_peak']:.1e} of the FDF's peak.)

""" + (f"""
Peak memory of the one pass (RM synthesis and peaks, from a cube store) with the tile fixed at
{args.chunk_mb:.0f} MB, as the channel count grows:

| channels | peak RSS (MB) |
|---|---|
{mem_rows}
""" if memory else "")
    write_results(f"faraday_{args.sky}", results, table)
    print(table)


if __name__ == "__main__":
    main()
