"""Catalogue detection figures: the workflow on the demo sky and on a faint sky
(resources/skymodels/faint.yaml, polarised sources from near the noise up), with the tiny test
configuration; completeness against FDF SNR, accuracy of RM, PI, Stokes I and spectral index (the
catalogue measures by fitting, kernels/photometry.py), RM errors against the scatter, the rate of
complex_flag on these Faraday-simple sources, false detections per 100 beams.

    .venv/bin/python benchmarks/detection.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml

from common import REPO, machine, run_workflow, write_results


def evaluate(workdir: Path, skymodel: Path, config: dict) -> dict:
    import xarray as xr
    from astropy.table import Table

    from spectropol.stages.simulate import load_sky_model

    catalogue = Table.read(workdir / "results/catalogue/catalogue.vot")
    peaks = xr.open_zarr(workdir / "results/faraday/peaks.zarr").load()
    cube = xr.open_zarr(workdir / "results/cube/cube.zarr")
    freqs = cube["freq"].values
    cell = config["imaging"]["cell_arcsec"] * np.pi / 180 / 3600
    npix = config["imaging"]["size"]
    beam_px = float(np.median(cube["bmaj"].values)) / np.rad2deg(cell)
    noise = float(np.nanmedian(peaks["fdf_noise"].values))
    reference_hz, sources = load_sky_model(skymodel)
    rows, matched = [], set()
    for source in sources:
        if source.pol_fraction == 0:
            continue
        x, y = npix // 2 - source.l / cell, npix // 2 + source.m / cell
        truth_pi = float(np.hypot(*[source.stokes(freqs, reference_hz)[s] for s in "QU"]).mean())
        distance = np.hypot(catalogue["x_pix"] - x, catalogue["y_pix"] - y) if len(catalogue) else np.array([np.inf])
        k = int(np.argmin(distance))
        found = bool(distance[k] < 1.0 * beam_px)
        row = {"name": source.name, "true_snr": truth_pi / noise, "found": found}
        if found:
            matched.add(k)
            entry = catalogue[k]
            truth_i = source.stokes_i_jy * (float(entry["reffreq_I"]) / reference_hz) ** source.spectral_index
            row.update({"rm_error_sigma": float((entry["rm"] - source.rm_rad_m2) / entry["rm_err"]),
                        "pi_ratio": float(entry["polint"] / truth_pi), "offset_beams": float(distance[k] / beam_px),
                        "stokes_i_ratio": float(entry["stokesI"] / truth_i),
                        "stokes_i_error_sigma": float((entry["stokesI"] - truth_i) / entry["stokesI_err"]),
                        "alpha_error": float(entry["spectral_index"] - source.spectral_index),
                        "alpha_error_sigma": float((entry["spectral_index"] - source.spectral_index)
                                                   / entry["spectral_index_err"]),
                        "complex_flag": str(entry["complex_flag"]), "flux_type": str(entry["flux_type"])})
        rows.append(row)
    beams = npix**2 / (1.1331 * beam_px**2)
    found = [r for r in rows if r["found"]]
    summary = {}
    if found:
        for key in ("rm_error_sigma", "stokes_i_error_sigma", "alpha_error_sigma"):
            values = np.array([r[key] for r in found])
            summary[key] = {"mean": float(values.mean()), "std": float(values.std())}
        for key in ("pi_ratio", "stokes_i_ratio"):
            values = np.array([r[key] for r in found])
            summary[key] = {"median": float(np.median(values)), "std": float(values.std())}
        summary["complex_flag_rate"] = float(np.mean([r["complex_flag"] == "Y" for r in found]))
    return {"sources": rows, "summary": summary, "false_detections": len(catalogue) - len(matched), "beams": beams,
            "false_per_100_beams": 100 * (len(catalogue) - len(matched)) / beams, "fdf_noise": noise}


def summary_table(results: dict) -> str:
    lines = ["| sky | (RM - truth) / rm_err: mean, std | (I - truth) / I_err: mean, std | (alpha - truth) / err: "
             "mean, std | PI / truth: median, std | I / truth: median, std | complex_flag Y |",
             "|---|---|---|---|---|---|---|"]
    for name in ("demo", "faint"):
        s = results[name]["summary"]
        if not s:
            continue
        pulls = " | ".join(f"{s[k]['mean']:+.2f}, {s[k]['std']:.2f}"
                           for k in ("rm_error_sigma", "stokes_i_error_sigma", "alpha_error_sigma"))
        ratios = " | ".join(f"{s[k]['median']:.3f}, {s[k]['std']:.3f}" for k in ("pi_ratio", "stokes_i_ratio"))
        lines.append(f"| {name} | {pulls} | {ratios} | {100 * s['complex_flag_rate']:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    base = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="spectropol-detect-") as tmp:
        for name in ("demo", "faint"):
            skymodel = REPO / f"resources/skymodels/{name}.yaml"
            config = base | {"simulate": base["simulate"] | {"skymodel": str(skymodel)}}
            workdir = Path(tmp) / name
            run_workflow(workdir, config, ["results/catalogue/catalogue.vot"], 2)
            results[name] = evaluate(workdir, skymodel, config)
    lines = []
    for name in ("demo", "faint"):
        r = results[name]
        for s in r["sources"]:
            extra = (f"| {s['rm_error_sigma']:+.2f} | {s['pi_ratio']:.3f} | {s['stokes_i_ratio']:.3f} | "
                     f"{s['alpha_error']:+.3f} | {s['complex_flag']} | {s['offset_beams']:.3f} |" if s["found"]
                     else "| - | - | - | - | - | - |")
            lines.append(f"| {name} | {s['name']} | {s['true_snr']:.1f} | {'yes' if s['found'] else 'no'} {extra}")
    table = f"""
## Catalogue detection (benchmarks/detection.py)

tests/configs/tiny.yaml (16 channels, 512^2, CLEAN 500, threshold 6 sigma, min SNR 8) on the demo
sky and on resources/skymodels/faint.yaml. FDF noise {results['demo']['fdf_noise'] * 1e3:.2f} / {results['faint']['fdf_noise'] * 1e3:.2f} mJy/beam;
false detections: demo {results['demo']['false_detections']} ({results['demo']['false_per_100_beams']:.2f} per 100 beams),
faint {results['faint']['false_detections']} ({results['faint']['false_per_100_beams']:.2f} per 100 beams).

| sky | source | true PI / FDF noise | found | (RM - truth) / rm_err | PI / truth | I / truth | alpha - truth | complex | offset (beams) |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(lines) + "\n\nOver the sources found (both skies apart):\n\n" + summary_table(results)
    write_results("detection", results, table)
    print(table)


if __name__ == "__main__":
    main()
