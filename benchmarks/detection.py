"""Catalogue detection figures: the workflow on the demo sky and on a faint sky
(resources/skymodels/faint.yaml, polarised sources from near the noise up), with the tiny test
configuration; completeness against FDF SNR, accuracy of RM, PI, Stokes I and spectral index (the
catalogue measures by fitting, kernels/photometry.py), RM errors against the scatter, the rate of
complex_flag on these Faraday-simple sources, false detections per 100 beams. Then the same figures
on image-plane fields (stages/simulate.py, sky_cube: 4 fields of 24 sources at random sub-pixel
positions, SNR 4-300, steep and flat spectra, a quarter of them with a second Faraday component
1-2 FWHM away) through the one pass and the catalogue, where the counts are large enough for
distributions: completeness against SNR, pulls, complex_flag on simple and two-component sources.

    .venv/bin/python benchmarks/detection.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import yaml

from common import REPO, machine, run_workflow, write_results


def evaluate(workdir: Path, skymodel: Path, config: dict, products: dict | None = None) -> dict:
    """Per source of ``skymodel`` what the catalogue of ``workdir``'s run found, or that of
    ``products`` (catalogue, peaks, cube: `spectropol faraday` on images made elsewhere)."""
    import xarray as xr
    from astropy.table import Table

    from spectropol.stages.simulate import load_sky_model

    products = products or {"catalogue": workdir / "results/catalogue/catalogue.vot",
                            "peaks": workdir / "results/faraday/peaks.zarr", "cube": workdir / "results/cube/cube.zarr"}
    catalogue = Table.read(products["catalogue"])
    peaks = xr.open_zarr(products["peaks"]).load()
    cube = xr.open_zarr(products["cube"])
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
                        "pi_ratio": float(entry["polint"] / (source.pol_fraction * truth_i)),
                        "offset_beams": float(distance[k] / beam_px),
                        "stokes_i_ratio": float(entry["stokesI"] / truth_i),
                        "stokes_i_error_sigma": float((entry["stokesI"] - truth_i) / entry["stokesI_err"]),
                        "alpha_error": float(entry["spectral_index"] - source.spectral_index),
                        "alpha_error_sigma": float((entry["spectral_index"] - source.spectral_index)
                                                   / entry["spectral_index_err"]),
                        "v_over_i_error": float(entry["v_over_i"] - source.v_fraction),
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


IMAGE_FIELDS = 4
SNR_BINS = (4, 8, 16, 32, 64, 1000)


def image_fields(tmp: Path, seed: int = 31) -> dict:
    """The image-plane fields: per source its truth and what the catalogue found."""
    from astropy.table import Table

    from spectropol.options import CatalogueOptions, DaskOptions, MomentsOptions, RMCleanOptions, RMSynthesisOptions
    from spectropol.stages.catalogue import CATALOGUE_FILES, build_catalogue
    from spectropol.stages.faraday import faraday_depth
    from spectropol.stages.simulate import IMAGE_REFERENCE_HZ, ImageSource, sky_cube

    rng = np.random.default_rng(seed)
    sigma, nfreq, npix = 2e-3, 48, 256
    fdf_noise = sigma / np.sqrt(nfreq)
    fwhm = 3.8 / np.ptp((2.998e8 / np.linspace(120e6, 168e6, nfreq)) ** 2)
    rows, false, beams = [], 0, 0.0
    for field in range(IMAGE_FIELDS):
        sources = []
        for y in np.linspace(20, 236, 4):
            for x in np.linspace(20, 236, 6):
                flux = rng.uniform(0.05, 1.0)
                snr = 10 ** rng.uniform(np.log10(4), np.log10(300))
                p, rm = min(0.7, snr * fdf_noise / flux), rng.uniform(-20, 20)
                components = ((p, rm, rng.uniform(0, 180)),)
                if rng.uniform() < 0.25:  # a second component 1-2 FWHM away, 0.3-1 times as bright
                    components += ((p * rng.uniform(0.3, 1.0), rm + rng.choice([-1, 1]) * fwhm * rng.uniform(1, 2),
                                    rng.uniform(0, 180)),)
                sources.append(ImageSource(x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5), flux,
                                           rng.uniform(-1.2, 0.0), components))
        folder = tmp / f"field{field}"
        sky_cube(folder / "cube.zarr", sources, rng, npix=npix, sigma=sigma)
        out = {"peaks": folder / "peaks.zarr", "candidates": folder / "fdf_candidates.zarr"}
        faraday_depth(folder / "cube.zarr", out, folder / "faraday.json", RMSynthesisOptions(phi_max_rad_m2=40.0),
                      RMCleanOptions(), dask=DaskOptions(threads=2), moments=MomentsOptions(),
                      moments_out=folder / "moments.zarr", moments_qa=folder / "moments.json")
        path = folder / CATALOGUE_FILES["votable"]
        build_catalogue(folder / "cube.zarr", folder / "moments.zarr", folder / "peaks.zarr", {"votable": path},
                        folder / "catalogue.json", CatalogueOptions())
        table = Table.read(path)
        matched = set()
        for source in sources:
            p, rm, _ = source.components[0]
            truth_i = source.flux * (float(table["reffreq_I"][0]) / IMAGE_REFERENCE_HZ) ** source.alpha if len(table) \
                else source.flux
            row = {"true_snr": p * truth_i / fdf_noise, "two_components": len(source.components) > 1, "found": False}
            distance = np.hypot(table["x_pix"] - source.x, table["y_pix"] - source.y) if len(table) else [np.inf]
            k = int(np.argmin(distance))
            if distance[k] < 1.5:
                matched.add(k)
                entry = table[k]
                row |= {"found": True, "complex_flag": str(entry["complex_flag"]),
                        "rm_error_sigma": float((entry["rm"] - rm) / entry["rm_err"]),
                        "pi_error_sigma": float((entry["polint"] - p * truth_i) / entry["polint_err"]),
                        "pi_ratio": float(entry["polint"] / (p * truth_i)),
                        "stokes_i_error_sigma": float((entry["stokesI"] - truth_i) / entry["stokesI_err"]),
                        "alpha_error_sigma": float((entry["spectral_index"] - source.alpha)
                                                   / entry["spectral_index_err"])}
            rows.append(row)
        false += len(table) - len(matched)
        beams += npix**2 / (1.1331 * 3.0 * 2.6)
    return {"sources": rows, "false_detections": false, "beams": beams,
            "false_per_100_beams": 100 * false / beams}


def image_summary(images: dict) -> dict:
    """Completeness against SNR, pulls of the simple sources found (above the catalogue's SNR 8),
    and complex_flag rates of simple and two-component sources."""
    rows = images["sources"]
    completeness = []
    for low, high in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        inside = [r for r in rows if low <= r["true_snr"] < high]
        completeness.append({"snr": [low, high], "sources": len(inside),
                             "found": int(sum(r["found"] for r in inside))})
    simple = [r for r in rows if r["found"] and not r["two_components"] and r["true_snr"] >= 8]
    pulls = {key: {"mean": float(np.mean([r[key] for r in simple])), "std": float(np.std([r[key] for r in simple])),
                   "within_2": float(np.mean([abs(r[key]) < 2 for r in simple]))}
             for key in ("rm_error_sigma", "pi_error_sigma", "stokes_i_error_sigma", "alpha_error_sigma")}
    rates = {}
    for name, which in (("simple", False), ("two_components_snr_50", True)):
        chosen = [r for r in rows if r["found"] and r["two_components"] == which
                  and (r["true_snr"] >= 50 or not which)]
        rates[name] = {"sources": len(chosen), "flagged": int(sum(r["complex_flag"] == "Y" for r in chosen))}
    return {"completeness": completeness, "pulls": pulls, "complex_flag": rates,
            "pi_ratio_median": float(np.median([r["pi_ratio"] for r in simple]))}


def summary_table(results: dict) -> str:
    lines = ["| sky | (RM - truth) / rm_err: mean, std | (I - truth) / I_err: mean, std | (alpha - truth) / err: "
             "mean, std | PI / truth: median, std | I / truth: median, std | complex_flag Y |",
             "|---|---|---|---|---|---|---|"]
    for name in ("demo", "demo_wsclean", "faint", "faint_wsclean"):
        s = results.get(name, {}).get("summary")
        if not s:
            continue
        pulls = " | ".join(f"{s[k]['mean']:+.2f}, {s[k]['std']:.2f}"
                           for k in ("rm_error_sigma", "stokes_i_error_sigma", "alpha_error_sigma"))
        ratios = " | ".join(f"{s[k]['median']:.3f}, {s[k]['std']:.3f}" for k in ("pi_ratio", "stokes_i_ratio"))
        lines.append(f"| {name} | {pulls} | {ratios} | {100 * s['complex_flag_rate']:.0f}% |")
    return "\n".join(lines)


def images_text(images: dict) -> str:
    s = images["summary"]
    completeness = " | ".join(f"{c['found']}/{c['sources']}" for c in s["completeness"])
    heads = " | ".join(f"{low}-{high}" for low, high in (c["snr"] for c in s["completeness"]))
    pulls = "\n".join(f"| {name} | {p['mean']:+.2f} | {p['std']:.2f} | {100 * p['within_2']:.0f}% |"
                      for name, p in (("(RM - truth) / rm_err", s["pulls"]["rm_error_sigma"]),
                                      ("(PI - truth) / polint_err", s["pulls"]["pi_error_sigma"]),
                                      ("(I - truth) / stokesI_err", s["pulls"]["stokes_i_error_sigma"]),
                                      ("(alpha - truth) / err", s["pulls"]["alpha_error_sigma"])))
    rates = s["complex_flag"]
    return f"""

Image-plane fields ({IMAGE_FIELDS} x 24 sources, 48 channels 120-168 MHz, 256^2 at 3 pixels per beam,
noise correlated over the beam; stages/simulate.py, sky_cube): false detections {images['false_detections']}
({images['false_per_100_beams']:.2f} per 100 beams). Completeness, found / simulated, by true FDF SNR:

| SNR | {heads} |
|---|{'---|' * len(s['completeness'])}
| found | {completeness} |

Simple sources found with SNR >= 8 (PI / truth median {s['pi_ratio_median']:.3f}):

| pull | mean | std | within 2 |
|---|---|---|---|
{pulls}

complex_flag: {rates['simple']['flagged']} of {rates['simple']['sources']} simple sources; {rates['two_components_snr_50']['flagged']} of
{rates['two_components_snr_50']['sources']} two-component sources (1-2 FWHM apart) with SNR >= 50.
"""


def wsclean_catalogue(workdir: Path, config: dict) -> dict | None:
    """WSClean 3 images the run's MS as the workflow does (IQUV joined, Briggs, CLEAN to the same
    depth; tests/test_fits_input.py) and `spectropol faraday` measures its FITS images: the
    catalogue's products, or None where wsclean is not installed."""
    import shutil
    import subprocess
    import sys

    if shutil.which("wsclean") is None:
        return None
    merged = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for section, values in config.items():
        merged[section] = merged[section] | values if isinstance(values, dict) else values
    imaging = merged["imaging"]
    folder = workdir / "wsclean"
    folder.mkdir(exist_ok=True)
    subprocess.run(["wsclean", "-quiet", "-size", str(imaging["size"]), str(imaging["size"]), "-scale",
                    f"{imaging['cell_arcsec']}asec", "-pol", "IQUV", "-channels-out", str(merged["simulate"]["nchan"]),
                    "-niter", str(merged["clean"]["niter"]), "-mgain", "0.8", "-join-polarizations",
                    "-auto-threshold", "3", "-no-update-model-required", "-weight", "briggs", str(imaging["robust"]),
                    "-name", str(folder / "wsc"), str(workdir / "work/ms/demo.ms")], check=True, capture_output=True)
    command = [sys.executable, "-m", "spectropol.cli", "faraday", str(folder / "out")]
    for stokes in "IQUV":
        command += [f"--{stokes.lower()}", *map(str, sorted(folder.glob(f"wsc-[0-9][0-9][0-9][0-9]-{stokes}-image.fits")))]
    subprocess.run(command, check=True, capture_output=True)
    out = folder / "out"
    return {"catalogue": out / "catalogue.vot", "peaks": out / "peaks.zarr", "cube": out / "cube.zarr"}


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
            theirs = wsclean_catalogue(workdir, config)
            if theirs:
                results[f"{name}_wsclean"] = evaluate(workdir, skymodel, config, theirs)
        results["images"] = image_fields(Path(tmp))
    results["images"]["summary"] = image_summary(results["images"])
    lines = []
    for name in ("demo", "demo_wsclean", "faint", "faint_wsclean"):
        r = results.get(name, {"sources": []})
        for s in r["sources"]:
            extra = (f"| {s['rm_error_sigma']:+.2f} | {s['pi_ratio']:.3f} | {s['stokes_i_ratio']:.3f} | "
                     f"{s['alpha_error']:+.3f} | {s['complex_flag']} | {s['offset_beams']:.3f} |" if s["found"]
                     else "| - | - | - | - | - | - |")
            lines.append(f"| {name} | {s['name']} | {s['true_snr']:.1f} | {'yes' if s['found'] else 'no'} {extra}")
    table = f"""
## Catalogue detection (benchmarks/detection.py)

tests/configs/tiny.yaml (16 channels, 512^2, CLEAN 500, threshold 6 sigma, min SNR 8) on the demo
sky and on resources/skymodels/faint.yaml; `*_wsclean`: the same MS imaged and CLEANed by WSClean 3 (IQUV
joined, the same weighting and depth) and measured by `spectropol faraday` on its FITS images, so that imaging and
measurement are judged apart. PI and I against the truth at `reffreq_pol`. FDF noise {results['demo']['fdf_noise'] * 1e3:.2f} / {results['faint']['fdf_noise'] * 1e3:.2f} mJy/beam;
false detections: demo {results['demo']['false_detections']} ({results['demo']['false_per_100_beams']:.2f} per 100 beams),
faint {results['faint']['false_detections']} ({results['faint']['false_per_100_beams']:.2f} per 100 beams).

| sky | source | true PI / FDF noise | found | (RM - truth) / rm_err | PI / truth | I / truth | alpha - truth | complex | offset (beams) |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(lines) + "\n\nOver the sources found (both skies apart):\n\n" + summary_table(results) \
        + images_text(results["images"])
    write_results("detection", results, table)
    print(table)


if __name__ == "__main__":
    main()
