"""Dirty imaging of IQUV + PSF for every channel: the workflow against a bare loop of ducc0 calls
and against WSClean, on the same MS with the same size, cell and (natural) weighting, in one run.
Also the peak memory of the split and image jobs at two channel counts, which must not grow with
the number of channels.

    .venv/bin/python benchmarks/imaging.py            # 60 antennas x 100 times x 64 channels, 1024^2
    .venv/bin/python benchmarks/imaging.py --quick    # a smaller case for a smoke test
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import job_benchmarks, job_peak_memory_mb, machine, random_layout, run_workflow, simulate, write_results


def bare_ducc0_loop(ms: Path, npix: int, cell_rad: float, nthreads: int) -> float:
    """The least work that gives the same images: read a channel, form Stokes, five vis2dirty calls."""
    from casacore.tables import table, taql
    from ducc0.wgridder.experimental import vis2dirty

    start = time.perf_counter()
    main = table(str(ms), ack=False)  # noqa: F841 (TaQL reads it as $main)
    cross = taql("SELECT FROM $main WHERE ANTENNA1 != ANTENNA2")
    uvw = cross.getcol("UVW")
    uvw_ducc = np.column_stack([-uvw[:, 1], uvw[:, 0], uvw[:, 2]])
    weight = cross.getcol("WEIGHT")
    freqs = table(f"{ms}::SPECTRAL_WINDOW", ack=False).getcell("CHAN_FREQ", 0)
    for c, freq in enumerate(freqs):
        data = cross.getcolslice("DATA", [c, 0], [c, 3])[:, 0, :]
        xx, xy, yx, yy = data.T
        w_i = (4.0 / (1 / weight[:, 0] + 1 / weight[:, 3])).astype(np.float32)
        stokes = [(xx + yy) / 2, (xx - yy) / 2, (xy + yx) / 2, -0.5j * (xy - yx), np.ones(len(xx), np.complex64)]
        for vis in stokes:
            vis2dirty(uvw=uvw_ducc, freq=np.array([freq]), vis=vis.astype(np.complex64)[:, None], wgt=w_i[:, None],
                      npix_x=npix, npix_y=npix, pixsize_x=cell_rad, pixsize_y=cell_rad, epsilon=2e-5,
                      do_wgridding=True, divide_by_n=False, nthreads=nthreads)
    return time.perf_counter() - start


def wsclean(ms: Path, prefix: Path, npix: int, cell_arcsec: float, nchan: int, cores: int) -> float:
    start = time.perf_counter()
    subprocess.run(["wsclean", "-quiet", "-j", str(cores), "-size", str(npix), str(npix), "-scale",
                    f"{cell_arcsec}asec",
                    "-pol", "IQUV", "-channels-out", str(nchan), "-niter", "0", "-weight", "natural",
                    "-no-update-model-required", "-name", str(prefix), str(ms)], check=True, capture_output=True)
    return time.perf_counter() - start


def image_targets(nchan: int) -> list[str]:
    return [f"results/channels/{c:05d}" for c in range(nchan)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 antennas x 20 times x 16 channels at 512^2")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    nant, ntimes, nchan, npix = (20, 20, 16, 512) if args.quick else (60, 100, 64, 1024)
    memory_channels = (16, 64) if args.quick else (64, 256)
    cell_arcsec = 15.0

    with tempfile.TemporaryDirectory(prefix="spectropol-bench-") as tmp:
        tmp = Path(tmp)
        layout = random_layout(tmp / "layout.yaml", nant, 3000.0)
        ms = tmp / "bench.ms"
        simulate(ms, layout, nchan, ntimes)
        config = {"input": {"ms": str(ms)}, "imaging": {"size": npix, "cell_arcsec": cell_arcsec,
                                                        "weighting": "natural",
                                                         "threads": 1}}
        workflow_s = run_workflow(tmp / "wf", config, image_targets(nchan), args.cores)
        image_jobs = job_benchmarks(tmp / "wf", "image_channel")
        split_jobs = job_benchmarks(tmp / "wf", "split_channel")
        peak_mb = {rule: max(job_peak_memory_mb(tmp / "wf", rule)) for rule in ("split_channel", "image_channel")}
        ducc0_s = bare_ducc0_loop(ms, npix, cell_arcsec * np.pi / 180 / 3600, args.cores)
        wsclean_s = wsclean(ms, tmp / "ws", npix, cell_arcsec, nchan, args.cores) if shutil.which("wsclean") else None

        memory = {}
        for channels in memory_channels:
            small = tmp / f"mem{channels}.ms"
            simulate(small, random_layout(tmp / "small.yaml", 30, 3000.0), channels, 40)
            workdir = tmp / f"mem{channels}"
            run_workflow(workdir, config | {"input": {"ms": str(small)}, "imaging": config["imaging"] | {"size": 512}},
                         image_targets(channels), args.cores)
            memory[channels] = {rule: max(job_peak_memory_mb(workdir, rule)) for rule in ("split_channel",
                                                                                          "image_channel")}
            shutil.rmtree(workdir)

    rows = nant * (nant - 1) // 2 * ntimes
    results = {
        "case": {"antennas": nant, "times": ntimes, "rows": rows, "channels": nchan, "npix": npix,
                 "cell_arcsec": cell_arcsec,
                 "weighting": "natural", "products": "IQUV dirty + PSF", "cores": args.cores},
        "wall_s": {"workflow": workflow_s, "bare_ducc0_loop": ducc0_s, "wsclean": wsclean_s},
        "ratio": {"workflow_over_ducc0": workflow_s / ducc0_s,
                  "workflow_over_wsclean": workflow_s / wsclean_s if wsclean_s else None},
        "workflow_jobs": {"image_channel_mean_s": float(np.mean([j["s"] for j in image_jobs])),
                          "split_channel_mean_s": float(np.mean([j["s"] for j in split_jobs])),
                          "image_channel_peak_mb": peak_mb["image_channel"],
                          "split_channel_peak_mb": peak_mb["split_channel"]},
        "peak_rss_mb_by_channel_count": memory,
        "machine": machine(),
    }
    ws = f"{wsclean_s:.1f}" if wsclean_s else "n/a"
    ratio_ws = f"{results['ratio']['workflow_over_wsclean']:.2f}" if wsclean_s else "n/a"
    mem_rows = "\n".join(f"| {c} | {m['split_channel']:.0f} | {m['image_channel']:.0f} |" for c, m in memory.items())
    table = f"""
## Dirty imaging (benchmarks/imaging.py{' --quick' if args.quick else ''})

{nant} antennas x {ntimes} times ({rows} rows) x {nchan} channels, {npix}^2, cell {cell_arcsec} arcsec, natural
weighting, Stokes I, Q, U, V + PSF per channel, w-gridding, {args.cores} cores; {results['machine']['platform']}.

| what | wall time (s) | workflow / this |
|---|---|---|
| workflow (split + image jobs, Snakemake) | {workflow_s:.1f} | 1.00 |
| bare ducc0 loop (read, Stokes, 5 x vis2dirty) | {ducc0_s:.1f} | {workflow_s / ducc0_s:.2f} |
| WSClean 3.1 `-pol IQUV -channels-out {nchan} -niter 0` | {ws} | {ratio_ws} |

Peak memory per job (RSS at exit from getrusage, MB) must not grow with the number of channels (512^2, 30 antennas x 40 times):

| channels | split_channel | image_channel |
|---|---|---|
{mem_rows}
"""
    write_results("imaging", results, table)
    print(table)


if __name__ == "__main__":
    main()
