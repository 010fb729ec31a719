"""RM synthesis and RM-CLEAN on one cube: spectropol against RM-Tools (rmsynth3d, rmclean3d) with
the same Faraday-depth sampling and cutoff, in one run; the synthesis kernel against a plain
complex64 matrix product of the same shapes; peak memory at 1x, 2x and 4x the channel count.

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

PHI_MAX, DPHI = 200.0, 1.0


def make_cube(folder: Path, nchan: int, npix: int, sky: str = "diffuse", seed: int = 1) -> tuple[Path, np.ndarray]:
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
    """Runs one spectropol step in this process (called through timed())."""
    from spectropol.options import DaskOptions, PeaksOptions, RMCleanOptions, RMSynthesisOptions
    from spectropol.stages.faraday import faraday_peaks, rm_clean, rm_synthesis

    dask = DaskOptions(threads=args.threads)
    if args.step == "synth":
        rm_synthesis(args.input, args.output, args.output + ".json",
                     RMSynthesisOptions(weighting="uniform", dphi_rad_m2=DPHI, phi_max_rad_m2=PHI_MAX,
                                        chunk_mb=args.chunk_mb),
                     dask)
    elif args.step == "clean":
        rm_clean(args.input, args.output, args.output + ".json", RMCleanOptions(cutoff_sigma=3.0,
                                                                                chunk_mb=args.chunk_mb), dask)
    else:  # peaks: exact (refined from the cube's Q and U) or on the grid only
        faraday_peaks(args.input, args.output, args.output + ".json", PeaksOptions(chunk_mb=args.chunk_mb), dask,
                      cube_store=args.cube if args.step == "peaks" else None)


def kernel_efficiency(cube: Path, freqs: np.ndarray, repeats: int = 3) -> dict:
    """The synthesis kernel on in-memory tiles against numpy's complex64 matmul of the same shapes."""
    import xarray as xr

    from spectropol.kernels.faraday import faraday_grid, rm_synthesis_block, synthesis_matrix

    data = xr.open_zarr(cube)["dirty"]
    nchan = len(freqs)
    q = data.sel(stokes="Q").values.reshape(nchan, -1)
    u = data.sel(stokes="U").values.reshape(nchan, -1)
    grid = faraday_grid(freqs, dphi=DPHI, phi_max=PHI_MAX)
    matrix = synthesis_matrix(grid)
    p = (q + 1j * u).astype(np.complex64)
    best_kernel = best_matmul = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        rm_synthesis_block(q, u, grid, matrix)
        best_kernel = min(best_kernel, time.perf_counter() - t)
        t = time.perf_counter()
        matrix @ p
        best_matmul = min(best_matmul, time.perf_counter() - t)
    flops = 8.0 * matrix.shape[0] * nchan * p.shape[1]
    return {"kernel_s": best_kernel, "matmul_s": best_matmul, "kernel_gflops": flops / best_kernel / 1e9,
            "matmul_gflops": flops / best_matmul / 1e9, "fraction_of_matmul_rate": best_matmul / best_kernel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sky", choices=("diffuse", "points"), default="diffuse",
                        help="diffuse: a polarised foreground over the whole field (default); points: sources on noise")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-mb", type=float, default=128.0)
    parser.add_argument("--step", choices=("synth", "clean", "peaks", "peaks-grid"))
    parser.add_argument("--input")
    parser.add_argument("--cube")
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
                            "threads": args.threads,
                            "chunk_mb": args.chunk_mb, "weighting": "uniform",
                            "cutoff": "3 sigma (theoretical FDF noise)"}}
        ours_synth = timed(me + ["--step", "synth", "--input", str(cube), "--output", str(tmp / "fdf.zarr")], tmp)
        ours_clean = timed(me + ["--step", "clean", "--input", str(tmp / "fdf.zarr"), "--output",
                                 str(tmp / "clean.zarr")], tmp)
        peaks_exact = timed(me + ["--step", "peaks", "--input", str(tmp / "clean.zarr"), "--cube", str(cube),
                                  "--output", str(tmp / "peaks.zarr")], tmp)
        peaks_grid = timed(me + ["--step", "peaks-grid", "--input", str(tmp / "clean.zarr"), "--output",
                                 str(tmp / "peaks_grid.zarr")], tmp)
        cutoff = 3.0 * json.loads((tmp / "fdf.zarr.json").read_text())["fdf_noise_theoretical"]
        rmtools_synth = timed([str(bindir / "rmsynth3d"), f"Q{nchan}.fits", f"U{nchan}.fits", f"freqs{nchan}.dat",
                               "-l", str(PHI_MAX),
                               "-d", str(DPHI), "-w", "uniform", "-o", "rmt_"], tmp)
        # RM-Tools' default, serial: its --ncores pool (schwimmbad) took over 10 min on 128^2 where
        # the serial loop takes about 15 s.
        rmtools_clean = timed([str(bindir / "rmclean3d"), "rmt_FDF_real_dirty.fits", "rmt_RMSF_real.fits", "-c",
                               f"{cutoff:.6g}",
                               "-o", "rmt_"], tmp)
        results["wall_s"] = {"spectropol_rm_synthesis": ours_synth[0], "rmtools_rmsynth3d": rmtools_synth[0],
                             "spectropol_rm_clean": ours_clean[0], "rmtools_rmclean3d": rmtools_clean[0],
                             "spectropol_peaks_exact": peaks_exact[0], "spectropol_peaks_grid": peaks_grid[0]}
        results["peak_rss_mb"] = {"spectropol_rm_synthesis": ours_synth[1], "rmtools_rmsynth3d": rmtools_synth[1],
                                  "spectropol_rm_clean": ours_clean[1], "rmtools_rmclean3d": rmtools_clean[1]}
        results["speedup"] = {"rm_synthesis": rmtools_synth[0] / ours_synth[0],
                              "rm_clean": rmtools_clean[0] / ours_clean[0]}
        results["kernel"] = kernel_efficiency(cube, freqs)

        memory = {}
        for factor in (1, 2, 4):
            channels = nchan * factor
            bigger, _ = make_cube(tmp, channels, npix, args.sky) if factor > 1 else (cube, freqs)
            out = tmp / f"fdf{channels}.zarr"
            memory[channels] = timed(me + ["--step", "synth", "--input", str(bigger), "--output", str(out)], tmp)[1]
            shutil.rmtree(out)
        results["synthesis_peak_rss_mb_by_channels"] = memory
        results["machine"] = machine()

    w, r, k = results["wall_s"], results["peak_rss_mb"], results["kernel"]
    mem_rows = "\n".join(f"| {c} | {m:.0f} |" for c, m in memory.items())
    table = f"""
## Faraday depth, {args.sky} sky (benchmarks/faraday.py --sky {args.sky}{' --quick' if args.quick else ''})

{"A polarised foreground over the whole field (every pixel to clean) plus 40 point sources on noise" if args.sky == "diffuse" else "40 polarised point sources on noise (few pixels to clean)"};
{nchan} channels x {npix}^2, phi -{PHI_MAX:.0f}..{PHI_MAX:.0f} step {DPHI} rad/m^2, uniform weights, RM-CLEAN to 3 sigma,
{args.threads} cores for spectropol (Dask threads), RM-Tools as it runs by default (rmsynth3d vectorised,
rmclean3d serial), chunk {args.chunk_mb:.0f} MB; {results['machine']['platform']}.

| step | spectropol (s) | RM-Tools (s) | speed-up | spectropol peak (MB) | RM-Tools peak (MB) |
|---|---|---|---|---|---|
| RM synthesis | {w['spectropol_rm_synthesis']:.1f} | {w['rmtools_rmsynth3d']:.1f} | {results['speedup']['rm_synthesis']:.1f}x | {r['spectropol_rm_synthesis']:.0f} | {r['rmtools_rmsynth3d']:.0f} |
| RM-CLEAN | {w['spectropol_rm_clean']:.1f} | {w['rmtools_rmclean3d']:.1f} | {results['speedup']['rm_clean']:.1f}x | {r['spectropol_rm_clean']:.0f} | {r['rmtools_rmclean3d']:.0f} |

Peak maps of the clean FDF (RM-Tools' 3-D tools make none): {w['spectropol_peaks_exact']:.1f} s with every pixel's
peak evaluated exactly from Q and U, {w['spectropol_peaks_grid']:.1f} s with a parabola through the grid.

Wall times include process start, reading and writing products. Synthesis kernel (in memory,
whole image as one block): {k['kernel_s']:.2f} s = {k['kernel_gflops']:.1f} GFLOP/s against a plain complex64 matmul of the same
shapes at {k['matmul_gflops']:.1f} GFLOP/s: **{100 * k['fraction_of_matmul_rate']:.0f}% of the matmul rate**.

Peak memory of RM synthesis with the chunk fixed, as the channel count grows:

| channels | peak RSS (MB) |
|---|---|
{mem_rows}
"""
    write_results(f"faraday_{args.sky}", results, table)
    print(table)


if __name__ == "__main__":
    main()
