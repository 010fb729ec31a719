"""Surveys: jobs and wall time for 1, 3 and 4 fields from an observation sheet, beside the same
fields run one at a time as single observations (the peer: what a survey did before sheets).

A strip of simulated fields two thirds of a field apart (neighbours overlap by a third), random
polarised sources along it; each field 8 channels of 128^2 pixels. Measured: a survey of 1 field,
a survey of 3 fields, then a 4th row added to that sheet (only its jobs and the merge must run),
then nothing changed (the DAG of 4 fields is built and found up to date); and the 3 fields run
one after the other as single-field configs.

    .venv/bin/python benchmarks/survey.py     (writes benchmarks/results/survey.json, docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from common import JOB_HEADER, REPO, SNAKEMAKE, git_commit, machine, write_results

FIELD_PX, CELL_ARCSEC, DEC = 128, 30.0, -30.0
SPACING_DEG = FIELD_PX * CELL_ARCSEC * 2 / 3 / 3600
SETTINGS = {"imaging": {"size": FIELD_PX, "cell_arcsec": CELL_ARCSEC}, "clean": {"niter": 300},
            "cube": {"chunk": 64}, "faraday": {"clean_max_iter": 200}, "catalogue": {"box": 16},
            "report": {"brightest": 1}}


def simulate_strip(folder: Path, nfields: int, seed: int = 5) -> list[str]:
    """``nfields`` field MSs along a strip of constant declination, one sky of 3 sources per field."""
    from spectropol.stages.simulate import simulate_ms

    rng = np.random.default_rng(seed)
    ra_step = SPACING_DEG / np.cos(np.deg2rad(DEC))
    half = FIELD_PX * CELL_ARCSEC / 3600 / 2 * 0.8
    nsrc = 3 * nfields
    ra = 60.0 + rng.uniform(-half, (nfields - 1) * SPACING_DEG + half, nsrc) / np.cos(np.deg2rad(DEC))
    dec = DEC + rng.uniform(-half, half, nsrc)
    sky = {"reference_frequency_hz": 128e6, "sources": [
        {"name": f"s{k}", "radec_deg": [float(ra[k]), float(dec[k])], "stokes_i_jy": 1.0, "spectral_index": -0.7,
         "pol_fraction": 0.3, "rm_rad_m2": float(rng.uniform(-6, 6)), "pol_angle_deg": 20.0} for k in range(nsrc)]}
    (folder / "sky.yaml").write_text(yaml.safe_dump(sky))
    names = []
    for k in range(nfields):
        name = f"F{k}"
        simulate_ms(folder / f"{name}.ms", folder / "sky.yaml", REPO / "resources/layouts/ska_low_like.yaml",
                    ra_deg=60.0 + ra_step * k, dec_deg=DEC, start_freq_hz=120e6, chan_width_hz=2e6, nchan=8,
                    ntimes=12, integration_s=10.0, hour_angle_span_h=4.0, noise_jy=0.1, seed=10 + k)
        names.append(name)
    return names


def snakemake(workdir: Path, config: dict, *extra: str) -> dict:
    """Run the workflow in ``workdir``; its wall time and the jobs it ran, by rule (prefix field_<name>_ removed)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    result = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
                             str(workdir / "config.yaml"), "--cores", "2", *extra],
                            capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"snakemake failed in {workdir}:\n{result.stderr[-3000:]}")
    rules = JOB_HEADER.findall(result.stdout + result.stderr)
    fields = sorted({m[1] for rule in rules if (m := re.match(r"field_(\w+?)_", rule))})
    return {"wall_s": round(wall, 1), "jobs": len(rules), "fields_with_jobs": fields,
            "survey_jobs": sum(rule.startswith("survey_") for rule in rules)}


def sheet(folder: Path, names: list[str], data: Path) -> str:
    (folder / "observations.tsv").write_text("name\tms\n" + "".join(f"{n}\t{data}/{n}.ms\n" for n in names))
    return "observations.tsv"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    with tempfile.TemporaryDirectory(prefix="survey-bench-") as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        names = simulate_strip(data, 4)
        runs = {}
        one = root / "one"
        one.mkdir()
        runs["survey_1_field"] = snakemake(one, SETTINGS | {"observations": sheet(one, names[:1], data)})
        survey = root / "survey"
        survey.mkdir()
        runs["survey_3_fields"] = snakemake(survey, SETTINGS | {"observations": sheet(survey, names[:3], data)})
        runs["add_4th_field"] = snakemake(survey, SETTINGS | {"observations": sheet(survey, names, data)})
        runs["nothing_changed_4_fields"] = snakemake(survey, SETTINGS | {"observations": "observations.tsv"})
        singles = []
        for name in names[:3]:
            alone = root / f"single-{name}"
            alone.mkdir()
            singles.append(snakemake(alone, SETTINGS | {"input": {"ms": str(data / f"{name}.ms")}}))
        runs["3_single_field_runs"] = {"wall_s": round(sum(r["wall_s"] for r in singles), 1),
                                       "jobs": sum(r["jobs"] for r in singles), "each": singles}
    result = {"benchmark": "survey", "commit": git_commit(),
              "machine": machine(), "field": {"pixels": FIELD_PX, "cell_arcsec": CELL_ARCSEC, "channels": 8},
              "runs": runs,
              "survey_3_over_singles_wall": round(runs["survey_3_fields"]["wall_s"] / runs["3_single_field_runs"]["wall_s"],
                                                  3)}
    write_results("survey", result, table(result))
    print(json.dumps(result, indent=1))


def table(result: dict) -> str:
    runs = result["runs"]
    lines = ["## Surveys (benchmarks/survey.py)", "",
             f"At commit {result['commit']}, {result['machine']['cpus']} cores; fields of "
             f"{result['field']['pixels']}^2 pixels x {result['field']['channels']} channels, neighbours "
             "overlapping by a third. The peer is the same fields run one at a time as single observations.", "",
             "| run | jobs | fields with jobs | survey-wide jobs | wall (s) |", "|---|---|---|---|---|"]
    for name, run in runs.items():
        fields = ", ".join(run.get("fields_with_jobs", [])) or "-"
        lines.append(f"| {name.replace('_', ' ')} | {run['jobs']} | {fields} | {run.get('survey_jobs', 0)} | "
                     f"{run['wall_s']} |")
    lines += ["", f"Survey of 3 fields / 3 single-field runs, wall time: {result['survey_3_over_singles_wall']} "
              "(one DAG runs the fields' jobs side by side on the 2 cores)."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
