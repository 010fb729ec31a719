"""Per-channel deconvolution: the workflow's image jobs with CLEAN against WSClean with the same
settings (-pol IQUV -join-polarizations -niter N -mgain 0.8 -auto-threshold 3) on the same MS,
in one run, with the final residual rms of both so that speed is compared at equal depth.

    .venv/bin/python benchmarks/deconvolution.py            # 40 antennas x 60 times x 16 channels, 512^2
    .venv/bin/python benchmarks/deconvolution.py --quick    # 20 antennas x 20 times x 4 channels, 256^2
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

from common import machine, planned_block, random_layout, run_workflow, simulate, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--niter", type=int, default=2000)
    args = parser.parse_args()
    nant, ntimes, nchan, npix = (20, 20, 4, 256) if args.quick else (40, 60, 16, 512)
    cell_arcsec = 15.0
    with tempfile.TemporaryDirectory(prefix="spectropol-clean-") as tmp:
        tmp = Path(tmp)
        ms = tmp / "bench.ms"
        simulate(ms, random_layout(tmp / "layout.yaml", nant, 3000.0), nchan, ntimes)
        config = {"input": {"ms": str(ms)},
                  "imaging": {"size": npix, "cell_arcsec": cell_arcsec, "weighting": "briggs", "robust": 0.0,
                              "threads": 1},
                  "clean": {"niter": args.niter, "mgain": 0.8, "gain": 0.1, "auto_threshold": 3.0}}
        targets = ["--until", "image_channel"]
        # the blocks the default (automatic) sizing gives with CLEAN, in the preparation run too
        config["channels"] = {"block": planned_block(config)}
        run_workflow(tmp / "prep", config | {"clean": {"niter": 0}}, ["--until", "split_channel"], args.cores)
        # time only the image jobs: reuse the split products of the preparation run
        shutil.copytree(tmp / "prep", tmp / "wf")
        ours_s = run_workflow(tmp / "wf", config, targets, args.cores)
        start = time.perf_counter()
        if shutil.which("wsclean"):
            subprocess.run(["wsclean", "-quiet", "-j", str(args.cores), "-size", str(npix), str(npix), "-scale",
                            f"{cell_arcsec}asec",
                            "-pol", "IQUV", "-join-polarizations", "-channels-out", str(nchan), "-weight", "briggs",
                            "0",
                            "-niter", str(args.niter), "-mgain", "0.8", "-auto-threshold", "3",
                            "-no-update-model-required",
                            "-name", str(tmp / "ws"), str(ms)], check=True, capture_output=True)
            wsclean_s = time.perf_counter() - start
            from astropy.io import fits

            ws_rms = float(np.median([1.4826 * np.median(np.abs(d - np.median(d))) for d in
                                      (fits.getdata(tmp / f"ws-{c:04d}-I-residual.fits")[0, 0] for c in range(nchan))]))
        else:
            wsclean_s, ws_rms = None, None
        qa = [json.loads(next((tmp / "wf/results/qa/image").glob(f"*/{c:05d}.json")).read_text()) for c in range(nchan)]
        our_rms = float(np.median([q["clean"]["residual_rms"]["I"] for q in qa]))
        iterations = int(np.sum([q["clean"]["iterations"] for q in qa]))
    results = {
        "case": {"antennas": nant, "times": ntimes, "channels": nchan, "npix": npix, "cell_arcsec": cell_arcsec,
                 "niter": args.niter, "mgain": 0.8, "auto_threshold": 3, "weighting": "briggs 0", "cores": args.cores},
        "wall_s": {"workflow_image_jobs": ours_s, "wsclean": wsclean_s},
        "ratio_workflow_over_wsclean": ours_s / wsclean_s if wsclean_s else None,
        "residual_rms_stokes_i_median": {"spectropol": our_rms, "wsclean": ws_rms},
        "spectropol_iterations_total": iterations,
        "machine": machine(),
    }
    ws = f"{wsclean_s:.1f}" if wsclean_s else "n/a"
    ratio = f"{ours_s / wsclean_s:.2f}" if wsclean_s else "n/a"
    table = f"""
## Deconvolution (benchmarks/deconvolution.py{' --quick' if args.quick else ''})

{nant} antennas x {ntimes} times x {nchan} channels, {npix}^2, cell {cell_arcsec} arcsec, Briggs 0, IQUV joined,
niter {args.niter}, mgain 0.8, auto-threshold 3, {args.cores} cores; {results['machine']['platform']}.

| what | wall time (s) | median Stokes I residual rms (Jy/beam) |
|---|---|---|
| workflow image jobs with CLEAN | {ours_s:.1f} | {our_rms:.3g} |
| WSClean 3.1 | {ws} | {ws_rms if ws_rms is None else f'{ws_rms:.3g}'} |

Workflow / WSClean: {ratio}.
"""
    write_results("deconvolution", results, table)
    print(table)


if __name__ == "__main__":
    main()
