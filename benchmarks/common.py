"""Shared pieces of the benchmarks: a random array layout, MS simulation, running the workflow,
and collecting Snakemake's per-job benchmark files."""

from __future__ import annotations

import csv
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# The header Snakemake prints for each job it runs (indented inside a group job): group 1 the rule.
JOB_HEADER = re.compile(r"^[ \t]*(?:local)?(?:rule|checkpoint) (\w+):$", flags=re.MULTILINE)


def git_commit(repo: Path = REPO) -> str:
    """The short commit of ``repo``'s checkout: what a benchmark's figures were measured at."""
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def benchmark_row(path: Path) -> dict:
    """A Snakemake benchmark file's row (s, max_rss in MB, ...), numbers as floats, missing as None."""
    with open(path) as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return {k: (float(v) if v not in ("-", "NA", "") else None) for k, v in row.items() if k != "h:m:s"}


def logged_peak_mb(log: Path) -> float | None:
    """Peak RSS a job logged at exit (getrusage, spectropol.logs): None where it logged none."""
    found = re.findall(r"peak memory (\d+) MB", log.read_text()) if log.exists() else []
    return float(found[-1]) if found else None


def random_layout(path: Path, nant: int, radius_m: float, seed: int = 1) -> Path:
    """A layout YAML with ``nant`` stations uniformly inside ``radius_m`` (denser towards the centre)."""
    rng = np.random.default_rng(seed)
    r = radius_m * rng.uniform(0, 1, nant) ** 1.5
    a = rng.uniform(0, 2 * np.pi, nant)
    stations = {f"S{k:03d}": [float(r[k] * np.cos(a[k])), float(r[k] * np.sin(a[k])), 0.0] for k in range(nant)}
    document = {"telescope": "benchmark", "location": {"longitude_deg": 116.7644, "latitude_deg": -26.8247,
                                                       "height_m": 377.0},
                "dish_diameter_m": 38.0, "stations": stations}
    path.write_text(yaml.safe_dump(document))
    return path


def simulate(ms: Path, layout: Path, nchan: int, ntimes: int) -> None:
    from spectropol.stages.simulate import simulate_ms

    simulate_ms(ms, REPO / "resources/skymodels/demo.yaml", layout, ra_deg=60.0, dec_deg=-30.0, start_freq_hz=120e6,
                chan_width_hz=64e6 / nchan, nchan=nchan, ntimes=ntimes, integration_s=10.0, hour_angle_span_h=6.0,
                noise_jy=1.0)


def run_workflow(workdir: Path, config: dict, targets: list[str], cores: int) -> float:
    """Run the workflow in ``workdir`` with ``config``; return its wall time in seconds. ``targets``
    are Snakemake arguments: files, or ["--until", "image_channel"] for every job up to a rule."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
                    str(workdir / "config.yaml"), "--cores", str(cores), *targets, "--quiet", "all"],
                   check=True, cwd=workdir)
    return time.perf_counter() - start


def job_benchmarks(workdir: Path, rule: str) -> list[dict]:
    """Snakemake's benchmark rows (s, max_rss in MB, ...) for every job of ``rule``."""
    return [benchmark_row(path) for path in sorted((workdir / "logs/benchmark" / rule).glob("*.tsv"))]


def job_peak_memory_mb(workdir: Path, rule: str) -> list[float]:
    """Peak RSS of each job of ``rule`` as the job itself logged it (getrusage at exit). Snakemake's
    benchmark sampling misses jobs shorter than its polling interval, so it is not used here."""
    peaks = (logged_peak_mb(path) for path in sorted((workdir / "logs" / rule).glob("*.log")))
    return [peak for peak in peaks if peak is not None]


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_results(name: str, results: dict, table: str) -> None:
    """JSON beside the script and a section of docs/benchmarks.md replaced in place."""
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    doc = REPO / "docs/benchmarks.md"
    new = "# Benchmarks\n\nMeasured by the scripts in benchmarks/; each writes benchmarks/results/NAME.json.\n"
    text = doc.read_text() if doc.exists() else new
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = f"{begin}\n{table.strip()}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)


def planned_block(config: dict) -> int:
    """The channels per job the workflow's automatic blocks choose for ``config`` (merged over the
    defaults), so that two runs with different settings can share their split jobs."""
    from spectropol.planning import observe, plan

    merged = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for section, values in config.items():
        merged[section] = merged[section] | values if isinstance(values, dict) else values
    return max(len(channels) for channels in plan(merged, observe(merged)).blocks.values())
