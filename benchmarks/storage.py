"""Bytes on disk of the products: results/ of the demo (`make run`'s config) by product, for this
checkout and, given --before REPO (a checkout of an earlier commit with its own .venv or this one),
for that one in the same run; and the Faraday products of the issue's LOFAR-like case
(1024^2 x 96 channels 120-168 MHz, phi -160..160 step 0.5: 641 depths) written by faraday_depth,
against what the three-stage layout wrote for it (computed from its layout: two raw complex64 FDF
cubes, compressed components, six float32 FITS cubes).

    .venv/bin/python benchmarks/storage.py [--before ../baseline] [--skip-large]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import REPO, SNAKEMAKE, git_commit, machine, write_results
from spectropol.io.stores import store_bytes


def file_count(path: Path) -> int:
    return 1 if path.is_file() else sum(1 for f in path.rglob("*") if f.is_file())


def product_groups(results: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Bytes and files per product of a results/ folder: channel images, cube, moments, each
    Faraday store and the Faraday FITS files, catalogue, report, QA."""
    groups, files = {}, {}
    for child in sorted(results.iterdir()):
        items = sorted(child.iterdir()) if child.name == "faraday" else [child]
        for item in items:
            key = "faraday/*.fits" if item.suffix == ".fits" else str(item.relative_to(results))
            groups[key] = groups.get(key, 0) + store_bytes(item)
            files[key] = files.get(key, 0) + file_count(item)
    return groups, files


def cube_files_at_scale(folder: Path, nchan: int = 4096, npix: int = 512, chunk: int = 256) -> dict:
    """Files of an nchan x 4 x npix^2 cube in the cube stage's layout (a shard per channel plane)
    and in the layout before sharding (a file per chunk), every plane written as gather_cube
    writes it (constant planes, so that 17 GB of noise need not be written to count files)."""
    import zarr

    from spectropol.stages.cube import create_cube_array

    counts = {}
    for layout in ("chunk per file", "shard per plane"):
        path = folder / layout.replace(" ", "_")
        if layout == "shard per plane":
            array = create_cube_array(path, "restored", nchan, npix, chunk, shard=True)
        else:
            array = zarr.create_array(path / "restored", shape=(nchan, 4, npix, npix), chunks=(1, 1, chunk, chunk),
                                      dtype=np.float32, zarr_format=3)
        start = time.perf_counter()
        for c in range(nchan):
            array[c] = np.full((4, npix, npix), c + 1, dtype=np.float32)
        counts[layout] = {"files": file_count(path), "write_s": round(time.perf_counter() - start, 1)}
    return {"nchan": nchan, "npix": npix, "chunk": chunk, "layouts": counts}


def demo_run(repo: Path, folder: Path) -> tuple[dict[str, int], float]:
    """The demo (the default config) run by ``repo``'s workflow in ``folder``."""
    snakemake = repo / ".venv/bin/snakemake"
    snakemake = snakemake if snakemake.exists() else Path(SNAKEMAKE)
    # That checkout's own library first: Snakemake imports the logger plugin (and so spectropol)
    # before the Snakefile can put its src/ on the path.
    env = os.environ | {"PYTHONPATH": str(repo / "src")}
    start = time.perf_counter()
    run = subprocess.run([str(snakemake), "-s", str(repo / "Snakefile"), "--directory", str(folder), "--cores", "2",
                          "all"], cwd=folder, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"the demo run of {repo} failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return product_groups(folder / "results"), time.perf_counter() - start


def large_case(folder: Path) -> dict:
    """faraday_depth on the 1024^2 x 96-channel cube, default products and RM-CLEAN."""
    from spectropol.io.cube import write_cube
    from spectropol.io.wcs import celestial_header
    from spectropol.kernels.faraday import lambda_squared
    from spectropol.options import DaskOptions, RMSynthesisOptions
    from spectropol.stages.faraday import faraday_depth

    nchan, npix, sigma = 96, 1024, 1e-3
    rng = np.random.default_rng(5)
    freqs = np.linspace(120e6, 168e6, nchan)
    l2 = lambda_squared(freqs)
    data = np.zeros((nchan, 4, npix, npix), np.float32)
    data[:, 1:3] = sigma * rng.standard_normal((nchan, 2, npix, npix), dtype=np.float32)
    for y, x in rng.integers(0, npix, (60, 2)):  # 60 polarised sources of 20-200 sigma
        pol = rng.uniform(0.02, 0.2) * np.exp(2j * (rng.uniform(0, np.pi) + rng.uniform(-60, 60) * l2))
        data[:, 1, y, x] += pol.real
        data[:, 2, y, x] += pol.imag
    cube = folder / "cube.zarr"
    write_cube(cube, data, freqs, celestial_header(0.5, 0.9, npix, npix, np.deg2rad(15 / 3600)),
               rms=np.full((nchan, 4), sigma, np.float32), chunk=256)
    del data
    out = {"peaks": folder / "peaks.zarr", "candidates": folder / "fdf_candidates.zarr"}
    start = time.perf_counter()
    result = faraday_depth(cube, out, folder / "qa.json", RMSynthesisOptions(dphi_rad_m2=0.5, phi_max_rad_m2=160.0),
                           dask=DaskOptions(threads=2))
    seconds = time.perf_counter() - start
    nphi, npix2 = result.faraday_grid["nphi"], npix * npix
    before = {"faraday/fdf_dirty.zarr": 8 * nphi * npix2, "faraday/fdf_clean.zarr (clean FDF, raw)": 8 * nphi * npix2,
              "faraday/*.fits (six FDF cubes)": 6 * 4 * nphi * npix2}
    return {"nchan": nchan, "npix": npix, "nphi": nphi, "cube_bytes": store_bytes(cube), "seconds": seconds,
            "candidates": result.candidates, "after": result.bytes, "before_computed": before}


def faraday_pass_by_layout(folder: Path, nchan: int = 256, npix: int = 512, repeats: int = 2) -> dict:
    """The Faraday pass (RM synthesis, RM-CLEAN, peaks, defaults) over the same noise cube stored a
    file per chunk and a shard per channel plane (cube.shard), in turn: what sharding costs in reading."""
    from spectropol.io.cube import write_cube
    from spectropol.io.wcs import celestial_header
    from spectropol.options import DaskOptions, RMCleanOptions, RMSynthesisOptions
    from spectropol.stages.faraday import faraday_depth

    data = (1e-3 * np.random.default_rng(1).standard_normal((nchan, 4, npix, npix))).astype(np.float32)
    freqs = np.linspace(120e6, 180e6, nchan)
    wcs = celestial_header(0.5, 0.9, npix, npix, np.deg2rad(15 / 3600))
    for shard in (False, True):
        write_cube(folder / f"shard-{shard}.zarr", data, freqs, wcs, rms=np.full((nchan, 4), 1e-3, np.float32),
                   chunk=256, shard=shard)
    del data
    seconds = {False: [], True: []}
    for repeat in range(repeats):
        for shard in (False, True):
            out = folder / f"out-{shard}-{repeat}"
            out.mkdir()
            start = time.perf_counter()
            faraday_depth(folder / f"shard-{shard}.zarr", {"peaks": out / "peaks.zarr", "candidates": out / "c.zarr"},
                          out / "qa.json", RMSynthesisOptions(), RMCleanOptions(), dask=DaskOptions(threads=2))
            seconds[shard].append(time.perf_counter() - start)
    return {"nchan": nchan, "npix": npix, "chunk_per_file_s": round(float(np.median(seconds[False])), 2),
            "shard_per_plane_s": round(float(np.median(seconds[True])), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of an earlier commit, run on the same demo")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    results = {"machine": machine()}
    commit = git_commit()
    with tempfile.TemporaryDirectory(prefix="spectropol-storage-") as tmp:
        tmp = Path(tmp)
        runs = {"after": REPO} | ({"before": args.before.resolve()} if args.before else {})
        for label, repo in runs.items():
            (tmp / label).mkdir()
            (groups, files), seconds = demo_run(repo, tmp / label)
            sha = git_commit(repo)
            results[f"demo_{label}"] = {"commit": sha, "bytes": groups, "total": sum(groups.values()),
                                        "files": files, "total_files": sum(files.values()),
                                        "seconds": round(seconds, 1)}
        (tmp / "scale").mkdir()
        results["cube_files_at_scale"] = cube_files_at_scale(tmp / "scale")
        (tmp / "read").mkdir()
        results["faraday_pass_by_layout"] = faraday_pass_by_layout(tmp / "read")
        if not args.skip_large:
            (tmp / "large").mkdir()
            results["large"] = large_case(tmp / "large")
    results["commit"] = commit

    lines = ["## Storage (benchmarks/storage.py)", "",
             "Bytes on disk of results/ for the demo (the default config, `make run`), by product:", ""]
    labels = [k for k in ("demo_before", "demo_after") if k in results]
    names = sorted({name for k in labels for name in results[k]["bytes"]})
    lines += ["| product | " + " | ".join(f"{k[5:]} ({results[k]['commit']}), MB | files" for k in labels) + " |",
              "|---|" + "---|---|" * len(labels)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{results[k]['bytes'].get(name, 0) / 1e6:.2f} | "
                                                 f"{results[k].get('files', {}).get(name, '')}" for k in labels) + " |")
    lines.append("| **all** | " + " | ".join(f"**{results[k]['total'] / 1e6:.1f}** | **{results[k].get('total_files', '')}**"
                                            for k in labels) + " |")
    lines += ["", "Before the one-pass Faraday stage (#12, measured at 10ba471 against 7a891b1) the demo's results/ "
              "took 5,038.8 MB, 2,004 MB of it FDF FITS cubes and 1,343 MB FDF Zarr cubes; now 1,718 MB."]
    scale = results["cube_files_at_scale"]
    lines += ["", f"The cube's files at {scale['nchan']} channels of {scale['npix']}^2 in {scale['chunk']}^2 chunks, "
              "every plane written as gather_cube writes it:", "", "| layout | files | time to write the planes (s) |",
              "|---|---|---|"]
    lines += [f"| {name} | {value['files']} | {value['write_s']} |" for name, value in scale["layouts"].items()]
    read = results["faraday_pass_by_layout"]
    lines += ["", f"What the shards cost in reading (cube.shard is off by default for it): the Faraday pass (RM "
              f"synthesis, RM-CLEAN, peaks) over a {read['nchan']}-channel {read['npix']}^2 noise cube took "
              f"{read['chunk_per_file_s']} s stored a file per chunk and {read['shard_per_plane_s']} s a shard per "
              f"plane ({read['shard_per_plane_s'] / read['chunk_per_file_s']:.2f}x; median of 2 each, in turn)."]
    if "large" in results:
        large = results["large"]
        before = sum(large["before_computed"].values())
        after = sum(large["after"].values())
        lines += ["", f"Faraday products of a {large['npix']}^2 x {large['nchan']}-channel cube (120-168 MHz, noise and "
                  f"60 polarised sources), phi -160..160 step 0.5 ({large['nphi']} depths), RM-CLEAN, default products "
                  f"(the cube itself: {large['cube_bytes'] / 1e9:.2f} GB, the same in both layouts):", "",
                  "| layout | product | GB |", "|---|---|---|"]
        for name, size in large["before_computed"].items():
            lines.append(f"| three stages (computed from their layout) | {name} | {size / 1e9:.2f} |")
        for name, size in large["after"].items():
            lines.append(f"| one pass ({results['commit']}, measured) | {name} | {size / 1e9:.3f} |")
        lines += ["", f"{before / 1e9:.1f} GB before, {after / 1e9:.3f} GB after ({before / max(after, 1):.0f}x less); "
                  f"{large['candidates']} candidate pixels kept; faraday_depth took {large['seconds']:.0f} s on 2 cores."]
    table = "\n".join(lines)
    write_results("storage", results, table)
    print(table)


if __name__ == "__main__":
    sys.exit(main())
