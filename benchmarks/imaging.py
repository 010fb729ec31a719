"""Imaging IQUV + PSF for every channel: the workflow (default config: automatic blocks) against a
bare loop of ducc0 calls and against WSClean, on the same MS with the same size, cell and (natural)
weighting, in one run: dirty images for all three, then the workflow's CLEAN against WSClean's
with the same iterations, gains and threshold, compared at their residual rms. Also the peak
memory of the split and image jobs at two channel counts, which must not grow with the number of
channels.

    .venv/bin/python benchmarks/imaging.py            # 60 antennas x 100 times x 64 channels, 1024^2
    .venv/bin/python benchmarks/imaging.py --quick    # a smaller case for a smoke test
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (
    git_commit,
    job_benchmarks,
    job_peak_memory_mb,
    machine,
    random_layout,
    run_workflow,
    simulate,
    write_results,
)


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


def wsclean(ms: Path, prefix: Path, npix: int, cell_arcsec: float, nchan: int, cores: int, niter: int = 0) -> float:
    clean = ["-niter", str(niter), "-mgain", "0.8", "-gain", "0.1", "-auto-threshold", "3", "-join-polarizations"]
    start = time.perf_counter()
    subprocess.run(["wsclean", "-quiet", "-j", str(cores), "-size", str(npix), str(npix), "-scale",
                    f"{cell_arcsec}asec", "-pol", "IQUV", "-channels-out", str(nchan), "-weight", "natural",
                    *(clean if niter else ["-niter", "0"]), "-no-update-model-required", "-name", str(prefix),
                    str(ms)], check=True, capture_output=True)
    return time.perf_counter() - start


def median_residual_rms(paths) -> float:
    from astropy.io import fits

    rms = []
    for path in paths:
        d = fits.getdata(path)[0, 0]
        rms.append(1.4826 * np.median(np.abs(d - np.median(d))))
    return float(np.median(rms))


def jobs(workdir: Path, rule: str) -> int:
    return len(list((workdir / "logs" / rule).glob("*.log")))


def imaging_table(results: dict, quick: bool, cores: int) -> str:
    """The docs/benchmarks.md section from the results (each part says the commit it was measured at)."""
    case, memory = results["case"], results["peak_rss_mb_by_channel_count"]
    nant, ntimes, rows, nchan, npix = (case[k] for k in ("antennas", "times", "rows", "channels", "npix"))
    cell_arcsec, dirty_jobs = case["cell_arcsec"], results["dirty"]["jobs"]
    clean_jobs, niter = results["clean"]["image_jobs"], results["clean"]["niter"]
    workflow_s, ducc0_s, wsclean_s = (results["dirty"]["wall_s"][k] for k in ("workflow", "bare_ducc0_loop", "wsclean"))
    clean_s, wsclean_clean_s = (results["clean"]["wall_s"][k] for k in ("workflow", "wsclean"))
    clean_rms, wsclean_rms = (results["clean"]["residual_rms_stokes_i_median"][k] for k in ("workflow", "wsclean"))
    commits = results.get("commits", {})
    args = argparse.Namespace(quick=quick, cores=cores)

    def fmt(value, spec=".1f"):
        return "n/a" if value is None else format(value, spec)

    mem_rows = "\n".join(f"| {c} | {m['split_channel']:.0f} | {m['image_channel']:.0f} |" for c, m in memory.items())
    speed_commit, memory_commit = commits.get("speed", "before a007758"), commits.get("memory", "before a007758")
    table = f"""
## Imaging (benchmarks/imaging.py{' --quick' if args.quick else ''})

{nant} antennas x {ntimes} times ({rows} rows) x {nchan} channels, {npix}^2, cell {cell_arcsec} arcsec, natural
weighting, Stokes I, Q, U, V + PSF per channel, w-gridding, {args.cores} cores, the default configuration
(automatic blocks: {dirty_jobs['image_channel']} image jobs dirty, {clean_jobs} with CLEAN);
{results['machine']['platform']}; times measured at commit {speed_commit}.

Dirty images, all three:

| what | wall time (s) | workflow / this |
|---|---|---|
| workflow (fingerprint, inspect, split and image jobs, Snakemake) | {workflow_s:.1f} | 1.00 |
| bare ducc0 loop (read, Stokes, 5 x vis2dirty, {args.cores} threads) | {ducc0_s:.1f} | {workflow_s / ducc0_s:.2f} |
| WSClean 3.1 `-pol IQUV -channels-out {nchan} -niter 0` | {fmt(wsclean_s)} | {fmt(results['dirty']['ratio']['workflow_over_wsclean'], '.2f')} |

CLEAN, niter {niter}, gain 0.1, mgain 0.8, auto-threshold 3 (WSClean `-join-polarizations`):

| what | wall time (s) | median Stokes I residual rms (Jy/beam) |
|---|---|---|
| workflow (as above, with CLEAN) | {clean_s:.1f} | {clean_rms:.3g} |
| WSClean 3.1 | {fmt(wsclean_clean_s)} | {fmt(wsclean_rms, '.3g')} |

Workflow / WSClean with CLEAN: {fmt(results['clean']['ratio_workflow_over_wsclean'], '.2f')}, at a residual rms ratio of
{fmt(clean_rms / wsclean_rms if wsclean_rms else None, '.3f')}.

Peak memory per job (MB: the job's own high-water mark, VmHWM, as it logs it; measured at commit
{memory_commit}) must not grow with the number of channels (512^2, 30 antennas x 40 times, dirty). Until
then the jobs logged getrusage's ru_maxrss, which Linux carries over from the process that starts
a job: every job reported Snakemake's own size (166-168 MB here, 557 MB on a 256-channel run).

| channels | split_channel | image_channel |
|---|---|---|
{mem_rows}
"""
    return table


def memory_by_channel_count(tmp: Path, channel_counts, cores: int) -> dict:
    """Each job's own peak memory (the largest split and image job) for MSs of ``channel_counts``
    channels, 512^2 dirty images of 30 antennas x 40 times."""
    memory = {}
    imaging = {"size": 512, "cell_arcsec": 15.0, "weighting": "natural", "threads": 1}
    for channels in channel_counts:
        small = tmp / f"mem{channels}.ms"
        simulate(small, random_layout(tmp / "small.yaml", 30, 3000.0), channels, 40)
        workdir = tmp / f"mem{channels}"
        run_workflow(workdir, {"input": {"ms": str(small)}, "imaging": imaging, "clean": {"niter": 0}},
                     ["--until", "image_channel"], cores)
        memory[channels] = {rule: max(job_peak_memory_mb(workdir, rule)) for rule in ("split_channel",
                                                                                      "image_channel")}
        shutil.rmtree(workdir)
        shutil.rmtree(small)
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 antennas x 20 times x 16 channels at 512^2")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--memory-only", action="store_true",
                        help="only the per-job memory against the channel count; the timings stay as measured")
    args = parser.parse_args()
    nant, ntimes, nchan, npix = (20, 20, 16, 512) if args.quick else (60, 100, 64, 1024)
    memory_channels = (16, 64) if args.quick else (64, 256)
    cell_arcsec = 15.0
    commit = git_commit()
    previous = Path(__file__).resolve().parent / "results/imaging.json"
    if args.memory_only:
        results = json.loads(previous.read_text())
        with tempfile.TemporaryDirectory(prefix="spectropol-bench-") as tmp:
            results["peak_rss_mb_by_channel_count"] = memory_by_channel_count(Path(tmp), memory_channels, args.cores)
        # the per-job peaks of the timing run were getrusage's (the parent's size): not kept
        for key in ("image_channel_peak_mb", "split_channel_peak_mb"):
            results["workflow_jobs"].pop(key, None)
        results.setdefault("commits", {"speed": "before a007758"})["memory"] = commit
        table = imaging_table(results, args.quick, args.cores)
        write_results("imaging", results, table)
        print(table)
        return

    with tempfile.TemporaryDirectory(prefix="spectropol-bench-") as tmp:
        tmp = Path(tmp)
        layout = random_layout(tmp / "layout.yaml", nant, 3000.0)
        ms = tmp / "bench.ms"
        simulate(ms, layout, nchan, ntimes)
        have_wsclean = shutil.which("wsclean") is not None
        imaging = {"size": npix, "cell_arcsec": cell_arcsec, "weighting": "natural", "threads": 1}
        dirty = {"input": {"ms": str(ms)}, "imaging": imaging, "clean": {"niter": 0}}
        until_images = ["--until", "image_channel"]
        workflow_s = run_workflow(tmp / "wf", dirty, until_images, args.cores)
        image_jobs = job_benchmarks(tmp / "wf", "image_channel")
        split_jobs = job_benchmarks(tmp / "wf", "split_channel")
        peak_mb = {rule: max(job_peak_memory_mb(tmp / "wf", rule)) for rule in ("split_channel", "image_channel")}
        dirty_jobs = {rule: jobs(tmp / "wf", rule) for rule in ("split_channel", "image_channel")}
        ducc0_s = bare_ducc0_loop(ms, npix, cell_arcsec * np.pi / 180 / 3600, args.cores)
        wsclean_s = wsclean(ms, tmp / "ws", npix, cell_arcsec, nchan, args.cores) if have_wsclean else None

        # CLEAN: the default niter, gains and auto-threshold in both; WSClean told the same.
        niter = 1000
        cleaned = {"input": {"ms": str(ms)}, "imaging": imaging, "clean": {"niter": niter}}
        clean_s = run_workflow(tmp / "wf_clean", cleaned, until_images, args.cores)
        qa = [json.loads(p.read_text()) for p in (tmp / "wf_clean/results/qa/image").glob("*/*.json")]
        clean_rms = float(np.median([q["clean"]["residual_rms"]["I"] for q in qa]))
        clean_jobs = jobs(tmp / "wf_clean", "image_channel")
        if have_wsclean:
            wsclean_clean_s = wsclean(ms, tmp / "wsc", npix, cell_arcsec, nchan, args.cores, niter=niter)
            wsclean_rms = median_residual_rms(tmp / f"wsc-{c:04d}-I-residual.fits" for c in range(nchan))
        else:
            wsclean_clean_s = wsclean_rms = None

        memory = memory_by_channel_count(tmp, memory_channels, args.cores)

    rows = nant * (nant - 1) // 2 * ntimes
    results = {
        "case": {"antennas": nant, "times": ntimes, "rows": rows, "channels": nchan, "npix": npix,
                 "cell_arcsec": cell_arcsec, "weighting": "natural", "products": "IQUV + PSF", "cores": args.cores,
                 "blocks": "auto (default)"},
        "dirty": {"wall_s": {"workflow": workflow_s, "bare_ducc0_loop": ducc0_s, "wsclean": wsclean_s},
                  "ratio": {"workflow_over_ducc0": workflow_s / ducc0_s,
                            "workflow_over_wsclean": workflow_s / wsclean_s if wsclean_s else None},
                  "jobs": dirty_jobs},
        "clean": {"niter": niter, "mgain": 0.8, "gain": 0.1, "auto_threshold": 3,
                  "wall_s": {"workflow": clean_s, "wsclean": wsclean_clean_s},
                  "ratio_workflow_over_wsclean": clean_s / wsclean_clean_s if wsclean_clean_s else None,
                  "residual_rms_stokes_i_median": {"workflow": clean_rms, "wsclean": wsclean_rms},
                  "image_jobs": clean_jobs},
        "workflow_jobs": {"image_channel_mean_s": float(np.mean([j["s"] for j in image_jobs])),
                          "split_channel_mean_s": float(np.mean([j["s"] for j in split_jobs])),
                          "image_channel_peak_mb": peak_mb["image_channel"],
                          "split_channel_peak_mb": peak_mb["split_channel"]},
        "peak_rss_mb_by_channel_count": memory,
        "machine": machine(),
        "commits": {"speed": commit, "memory": commit},
    }

    table = imaging_table(results, args.quick, args.cores)
    write_results("imaging", results, table)
    print(table)


if __name__ == "__main__":
    main()
