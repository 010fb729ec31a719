"""The whole workflow at growing channel counts on one node (#14): a simulated observation at 512^2
with a sparse array and few time samples (so the visibilities stay small while the cube grows to
4 x 512^2 float32 planes per channel), run end to end with the default configuration. For each
channel count: the wall time, the job count, each rule's job-seconds and every job's peak memory
against the memory it asked the scheduler for, and the bytes and files each product takes.

    .venv/bin/python benchmarks/scale.py --nchan 256 1024        # about 35 min on 2 cores
    .venv/bin/python benchmarks/scale.py --nchan 4096            # hours; ~75 GB of disk

Peak memory is what each job logs at exit (getrusage, spectropol.logs); the request is the
``mem_mb`` Snakemake printed for the job. Runs already in benchmarks/results/scale.json for other
channel counts are kept, so the counts can be measured in separate sittings.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from common import (
    JOB_HEADER,
    REPO,
    SNAKEMAKE,
    benchmark_row,
    git_commit,
    logged_peak_mb,
    machine,
    random_layout,
    simulate,
    write_results,
)

LIMIT_MB = 3000.0  # the ceiling for any job at 4,096 channels


def job_records(output: str, workdir: Path) -> list[dict]:
    """Each job Snakemake ran: rule, log, memory request (MB), peak memory it logged (MB) and its
    time from the benchmark file (s)."""
    headers = list(JOB_HEADER.finditer(output))
    jobs = []
    for number, header in enumerate(headers):
        text = output[header.end(): headers[number + 1].start() if number + 1 < len(headers) else len(output)]
        log = re.search(r"^\s+log: (\S+)", text, flags=re.MULTILINE)
        bench = re.search(r"^\s+benchmark: (\S+)", text, flags=re.MULTILINE)
        request = re.search(r"\bmem_mb=(\d+)", text)
        if log is None:  # the target rule
            continue
        seconds = benchmark_row(workdir / bench[1])["s"] if bench and (workdir / bench[1]).exists() else None
        jobs.append({"rule": header[1], "log": log[1].rstrip(","), "request_mb": int(request[1]) if request else None,
                     "peak_mb": logged_peak_mb(workdir / log[1].rstrip(",")), "seconds": seconds})
    return jobs


def product_footprint(workdir: Path) -> dict[str, dict[str, int]]:
    """Bytes and files under each product folder of results/ and work/."""
    footprint = {}
    for top in ("results", "work"):
        for folder in sorted(p for p in (workdir / top).iterdir() if p.is_dir()):
            files = [f for f in folder.rglob("*") if f.is_file()]
            footprint[f"{top}/{folder.name}"] = {"bytes": sum(f.stat().st_size for f in files), "files": len(files)}
    return footprint


def run_scale(nchan: int, nant: int, ntimes: int, cores: int, base: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"scale{nchan}-", dir=base))
    try:
        ms = workdir / "observation.ms"
        started = time.perf_counter()
        simulate(ms, random_layout(workdir / "layout.yaml", nant, 2500.0), nchan, ntimes)
        simulate_s = time.perf_counter() - started
        (workdir / "config.yaml").write_text(yaml.safe_dump({"input": {"ms": str(ms)}}))
        command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                   "--configfile", str(workdir / "config.yaml"), "--cores", str(cores)]
        # Planning alone (a dry run, which starts no job, so GNU time's peak is Snakemake's own): the
        # submitting node's share. The fingerprint job is the first job, so the dry run plans the
        # blocks from the MS's shape and the checkpoint's record is made by the real run.
        started = time.perf_counter()
        dry = subprocess.run(["/usr/bin/time", "-f", "%M", *command, "-n", "--quiet"], cwd=workdir,
                             capture_output=True, text=True)
        dry_s = time.perf_counter() - started
        if dry.returncode != 0:
            raise RuntimeError(f"the dry run failed at {nchan} channels:\n{dry.stderr[-4000:]}")
        dry_peak_mb = float(dry.stderr.strip().splitlines()[-1]) / 1024.0
        started = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"the workflow failed at {nchan} channels:\n{result.stderr[-4000:]}")
        jobs = job_records(result.stdout + result.stderr, workdir)
        rules: dict[str, dict] = {}
        for job in jobs:
            entry = rules.setdefault(job["rule"], {"jobs": 0, "job_s": 0.0, "peak_mb": 0.0, "request_mb": None,
                                                   "over_request": 0})
            entry["jobs"] += 1
            entry["job_s"] = round(entry["job_s"] + (job["seconds"] or 0.0), 1)
            if job["peak_mb"] is not None:
                entry["peak_mb"] = max(entry["peak_mb"], job["peak_mb"])
            if job["request_mb"] is not None:
                # the smallest request of the rule: the one a job is most likely to exceed
                entry["request_mb"] = min(entry["request_mb"] or job["request_mb"], job["request_mb"])
            if job["peak_mb"] is not None and job["request_mb"] is not None and job["peak_mb"] > job["request_mb"]:
                entry["over_request"] += 1
        ms_bytes = sum(f.stat().st_size for f in ms.rglob("*") if f.is_file())
        footprint = product_footprint(workdir)
        return {"nchan": nchan, "nant": nant, "ntimes": ntimes, "ms_bytes": ms_bytes, "simulate_s": round(simulate_s, 1),
                "wall_s": round(wall, 1), "jobs": len(jobs), "dry_run_s": round(dry_s, 1),
                "dry_run_peak_mb": round(dry_peak_mb),
                "rules": rules, "footprint": footprint,
                "max_job_peak_mb": max((j["peak_mb"] or 0.0) for j in jobs),
                "jobs_over_request": sum(r["over_request"] for r in rules.values()),
                "jobs_without_peak": [j["log"] for j in jobs if j["peak_mb"] is None],
                "commit": git_commit()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: dict) -> str:
    runs = [results["runs"][key] for key in sorted(results["runs"], key=int)]
    counts = " | ".join(f"{r['nchan']:,} ch" for r in runs)
    rule_names = sorted({name for r in runs for name in r["rules"]},
                        key=lambda name: -max(r["rules"].get(name, {}).get("job_s", 0) for r in runs))

    def cell(run, name):
        entry = run["rules"].get(name)
        if entry is None:
            return "-"
        request = f"{entry['request_mb']}" if entry["request_mb"] is not None else "-"
        return f"{entry['jobs']} / {entry['job_s']:.0f} / {entry['peak_mb']:.0f} of {request}"

    rows = "\n".join(f"| {name} | " + " | ".join(cell(run, name) for run in runs) + " |" for name in rule_names)
    products = sorted({name for r in runs for name in r["footprint"]})
    disk = "\n".join(f"| {name} | " + " | ".join(
        f"{r['footprint'][name]['bytes'] / 1e6:,.0f} MB, {r['footprint'][name]['files']:,} files"
        if name in r["footprint"] else "-" for r in runs) + " |" for name in products)
    totals = " | ".join(
        f"{sum(p['bytes'] for p in r['footprint'].values()) / 1e9:.2f} GB, "
        f"{sum(p['files'] for p in r['footprint'].values()):,} files" for r in runs)
    sep = "|---" * (len(runs) + 1) + "|"
    return f"""
## Scale: the whole workflow at growing channel counts (benchmarks/scale.py)

A simulated observation ({runs[0]['nant']} stations, {runs[0]['ntimes']} time samples, 64 MHz from 120 MHz split into
the channel count; the demo sky) imaged at 512^2 with the **default configuration** (automatic channel
blocks, RM-CLEAN, Faraday depth range and step from the band), {results['cores']} cores, on
{results['machine']['platform']}. Every job's peak memory is what it logged at exit; its request is the
`mem_mb` Snakemake gave it. Commits: {", ".join(f"{r['nchan']:,} ch at {r['commit']}" for r in runs)}.

| | {counts} |
{sep}
| wall (s) | {" | ".join(f"{r['wall_s']:,.0f}" for r in runs)} |
| jobs | {" | ".join(str(r['jobs']) for r in runs)} |
| largest job peak (MB) | {" | ".join(f"{r['max_job_peak_mb']:.0f}" for r in runs)} |
| jobs above their request | {" | ".join(str(r['jobs_over_request']) for r in runs)} |
| planning: `snakemake -n` (s, MB) | {" | ".join(f"{r['dry_run_s']}, {r['dry_run_peak_mb']}" for r in runs)} |
| MS (MB) | {" | ".join(f"{r['ms_bytes'] / 1e6:,.0f}" for r in runs)} |

Per rule: jobs / job-seconds / largest peak of its jobs (MB) of the smallest request (MB):

| rule | {counts} |
{sep}
{rows}

On disk, by product:

| product | {counts} |
{sep}
{disk}
| **total** | {totals} |
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nchan", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--nant", type=int, default=24)
    parser.add_argument("--ntimes", type=int, default=24)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--base", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the runs' working directories go (needs the disk the table says)")
    args = parser.parse_args()
    path = REPO / "benchmarks/results/scale.json"
    results = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    results |= {"cores": args.cores, "machine": machine()}
    for nchan in args.nchan:
        results["runs"][str(nchan)] = run_scale(nchan, args.nant, args.ntimes, args.cores, args.base)
        write_results("scale", results, table(results))
        print(json.dumps({k: v for k, v in results["runs"][str(nchan)].items() if k not in ("rules", "footprint")}))
    print(table(results))


if __name__ == "__main__":
    main()
