"""Reruns and scale of the DAG.

1. Incremental rerun: the whole workflow on a simulated MS, then one channel's data changed and
   the workflow rerun; wall time of the rerun against the full run (target <= 5%).
2. DAG size: `snakemake -n` wall time and peak memory for 1,024, 16,384 and 65,536 channels, one
   channel per job and blocks of channels per job (target: 65,536 channels in under 60 s and 2 GB).

    python benchmarks/incremental.py [--nchan 256] [--dag-only | --rerun-only | --fingerprint-only] [--dag-limit-s 900]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import JOB_HEADER, REPO, SNAKEMAKE, git_commit, machine, random_layout, simulate, write_results  # noqa: E402


def timed(command: list[str], cwd: Path, limit_s: float | None = None) -> tuple[float, float | None, str]:
    """Wall time (s), peak RSS of the process (MB; None if stopped at ``limit_s``) and its output.

    The peak is GNU time's: the rusage of a child of this (large) process would count the pages it
    shared with its parent at the fork (8.5 GB for every dry run after an in-process simulation)."""
    import signal
    import threading

    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output, tempfile.NamedTemporaryFile("r") as peak_file:
        process = subprocess.Popen(["/usr/bin/time", "-o", peak_file.name, "-f", "%M", *command], cwd=cwd,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(limit_s, lambda: os.killpg(process.pid, signal.SIGKILL)) if limit_s else None
        if timer:
            timer.start()
        process.wait()
        wall = time.perf_counter() - start
        if timer:
            timer.cancel()
        output.seek(0)
        text = output.read()
        lines = peak_file.read().strip().splitlines()
    if process.returncode != 0 and limit_s and wall >= limit_s:
        return wall, None, text
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{text[-3000:]}")
    return wall, float(lines[-1]) / 1024, text


def dag_figures(limit_s: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for nchan in (1024, 16384, 65536):
            for block in (1, 64, "auto"):
                config = {"work_dir": str(tmp / "work"), "results_dir": str(tmp / "results"),
                          "simulate": {"nchan": nchan}, "channels": {"block": block}}
                path = tmp / f"config_{nchan}_{block}.yaml"
                path.write_text(yaml.safe_dump(config))
                wall, peak, text = timed([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp),
                                          "--configfile", str(path), "--cores", "2", "-n", "--quiet", "all"], tmp,
                                          limit_s)
                jobs = None
                for line in text.splitlines():
                    if line.startswith("total"):
                        jobs = int(line.split()[1])
                rows.append({"nchan": nchan, "block": block, "jobs": jobs, "wall_s": round(wall, 1),
                             "peak_mb": None if peak is None else round(peak), "finished": peak is not None})
                print(rows[-1], flush=True)
    return rows


def rule_seconds(workdir: Path, since: float) -> dict[str, float]:
    """Seconds per rule of the jobs that ran after ``since`` (Snakemake's benchmark files)."""
    totals: dict[str, float] = {}
    for path in (workdir / "logs/benchmark").rglob("*.tsv"):
        if path.stat().st_mtime >= since:
            rule = path.relative_to(workdir / "logs/benchmark").parts[0].removesuffix(".tsv")
            seconds = float(path.read_text().splitlines()[1].split("\t")[0])
            totals[rule] = round(totals.get(rule, 0.0) + seconds, 1)
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def rerun_figures(nchan: int, cores: int, nant: int, ntimes: int, keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if keep:  # the run's directory kept, to profile its stages afterwards
            keep.mkdir(parents=True, exist_ok=False)
            tmp = keep
        ms = tmp / "survey.ms"
        simulate(ms, random_layout(tmp / "layout.yaml", nant, 2500.0), nchan, ntimes)
        config = {"input": {"ms": str(ms)}, "imaging": {"size": 512, "cell_arcsec": 20.0}, "clean": {"niter": 500},
                  "cube": {"chunk": 128}}
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        # Not --quiet: the job counts of the rerun are the "rule NAME:" headers of the jobs that ran.
        command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp), "--configfile",
                   str(tmp / "config.yaml"), "--cores", str(cores)]
        started = time.time()
        full, _, _ = timed(command, tmp)
        full_rules = rule_seconds(tmp, started)
        from casacore.tables import table

        # Three reruns, each after one more channel changed (the middle, a quarter, three quarters
        # in): a 45 s rerun catches whatever else the machine does in those seconds, so the figure
        # is their median, with their range beside it.
        reruns = []
        for channel in (nchan // 2, nchan // 4, 3 * nchan // 4):
            with table(str(ms), readonly=False, ack=False) as main:
                data = main.getcolslice("DATA", [channel, 0], [channel, 3])
                main.putcolslice("DATA", data * 1.1, [channel, 0], [channel, 3])
            started = time.time()
            wall, _, text = timed(command, tmp)
            jobs: dict[str, int] = {}
            for match in JOB_HEADER.finditer(text):
                jobs[match[1]] = jobs.get(match[1], 0) + 1
            reruns.append({"channel": channel, "wall_s": round(wall, 1), "rules_s": rule_seconds(tmp, started),
                           "jobs": jobs})
            print(reruns[-1], flush=True)
        nothing, _, _ = timed(command, tmp)
    if any(r["jobs"] != reruns[0]["jobs"] for r in reruns):
        raise RuntimeError(f"the reruns ran different jobs: {[r['jobs'] for r in reruns]}")
    middle = sorted(reruns, key=lambda r: r["wall_s"])[len(reruns) // 2]
    return {"nchan": nchan, "nant": nant, "ntimes": ntimes, "full_rules_s": full_rules,
            "rerun_rules_s": middle["rules_s"], "full_s": round(full, 1), "rerun_s": middle["wall_s"],
            "reruns_s": [r["wall_s"] for r in reruns], "nothing_changed_s": round(nothing, 1),
            "rerun_fraction": round(middle["wall_s"] / full, 4), "rerun_jobs": middle["jobs"]}


def fingerprint_figures(nchan: int) -> dict:
    """Fingerprinting cost: the first pass reads data, flags and weights once; a warm cache reads
    nothing; after an edit of one column only that column is read."""
    from casacore.tables import table

    from spectropol.io.fingerprint import ms_fingerprints

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ms = tmp / "survey.ms"
        simulate(ms, random_layout(tmp / "layout.yaml", 40, 2500.0), nchan, 40)
        size_mb = sum(p.stat().st_size for p in ms.rglob("*") if p.is_file()) / 1e6

        def run():
            start = time.perf_counter()
            ms_fingerprints(str(ms), column="DATA", spws=[0], field=None, cache_path=tmp / "fp.json")
            return time.perf_counter() - start

        cold, warm = run(), run()
        with table(str(ms), readonly=False, ack=False) as main:
            flags = main.getcolslice("FLAG", [1, 0], [1, 3])
            main.putcolslice("FLAG", ~flags, [1, 0], [1, 3])
        flag_edit = run()
    return {"nchan": nchan, "ms_mb": round(size_mb), "cold_s": round(cold, 2), "warm_s": round(warm, 4),
            "after_flag_edit_s": round(flag_edit, 2), "cold_mb_per_s": round(size_mb / cold)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nchan", type=int, default=256)
    parser.add_argument("--nant", type=int, default=60, help="antennas of the rerun benchmark's MS")
    parser.add_argument("--ntimes", type=int, default=100, help="time samples of the rerun benchmark's MS")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--dag-only", action="store_true")
    parser.add_argument("--rerun-only", action="store_true")
    parser.add_argument("--fingerprint-only", action="store_true")
    parser.add_argument("--dag-limit-s", type=float, default=900.0)
    parser.add_argument("--keep", type=Path, help="run the rerun benchmark in this new directory and keep it")
    args = parser.parse_args()
    commit = git_commit()
    results = {"machine": machine()}
    previous = REPO / "benchmarks/results/incremental.json"
    if previous.exists():
        results |= {k: v for k, v in json.loads(previous.read_text()).items()
                    if k in ("rerun", "dag", "fingerprint", "commits")}
    results.setdefault("commits", {})
    only = args.dag_only or args.rerun_only or args.fingerprint_only
    if args.rerun_only or not only:
        results["rerun"] = rerun_figures(args.nchan, args.cores, args.nant, args.ntimes, args.keep)
        results["commits"]["rerun"] = commit
        print(results["rerun"], flush=True)
    if args.fingerprint_only or not only:
        results["fingerprint"] = fingerprint_figures(args.nchan)
        results["commits"]["fingerprint"] = commit
        print(results["fingerprint"], flush=True)
    if args.dag_only or not only:
        results["dag"] = dag_figures(args.dag_limit_s)
        results["commits"]["dag"] = commit
    measured = results["commits"]

    lines = ["## Incremental reruns and DAG size (benchmarks/incremental.py)", ""]
    if "rerun" in results:
        r = results["rerun"]
        jobs = ", ".join(f"{k} {v}" for k, v in r["rerun_jobs"].items())
        lines += [f"A simulated MS of {r['nchan']} channels ({r['nant']} antennas x {r['ntimes']} times, 512^2, CLEAN 500, "
                  f"{args.cores} cores); one channel's DATA scaled by 1.1, then the workflow rerun (three times, "
                  f"a different channel each time; the rules' seconds are the median rerun's) "
                  f"(measured at commit {measured.get('rerun', 'before 1a9dde7')}).", "",
                  "| run | wall time (s) | of the full run |", "|---|---|---|",
                  f"| full | {r['full_s']} | 100% |",
                  f"| rerun, 1 channel changed (median of {len(r.get('reruns_s', [0]))}) | {r['rerun_s']} | "
                  f"{100 * r['rerun_fraction']:.1f}% |",
                  *([f"| the reruns, each after one more channel changed | {', '.join(map(str, r['reruns_s']))} | "
                     f"{100 * min(r['reruns_s']) / r['full_s']:.1f}-{100 * max(r['reruns_s']) / r['full_s']:.1f}% |"]
                    if "reruns_s" in r else []),
                  f"| rerun, nothing changed | {r['nothing_changed_s']} | {100 * r['nothing_changed_s'] / r['full_s']:.1f}% |",
                  "", f"Jobs of the rerun: {jobs}.", "",
                  "Job seconds per rule (Snakemake benchmark files; jobs overlap on the cores):", "",
                  "| rule | full run | rerun |", "|---|---|---|"]
        for rule in r["full_rules_s"]:
            lines.append(f"| {rule} | {r['full_rules_s'][rule]} | {r['rerun_rules_s'].get(rule, '-')} |")
        lines.append("")
    if "fingerprint" in results:
        f = results["fingerprint"]
        lines += [f"Fingerprinting (commit {measured.get('fingerprint', 'before 1a9dde7')}) the same kind of MS "
                  f"({f['nchan']} channels, {f['ms_mb']} MB): first pass "
                  f"{f['cold_s']} s ({f['cold_mb_per_s']} MB/s), unchanged MS {1000 * f['warm_s']:.1f} ms (cache), "
                  f"after editing FLAG {f['after_flag_edit_s']} s (FLAG read again, not DATA).", ""]
    if "dag" in results:
        lines += [f"`snakemake -n` (commit {measured.get('dag', 'before 1a9dde7')}) on the demo configuration with "
                  "`simulate.nchan` channels (wall time, peak RSS):", "",
                  "| channels | channels per job | jobs | wall time (s) | peak memory (MB) |", "|---|---|---|---|---|"]
        for row in results["dag"]:
            if row["finished"]:
                lines.append(f"| {row['nchan']:,} | {row['block']} | {row['jobs']:,} | {row['wall_s']} | "
                             f"{row['peak_mb']} |")
            else:
                lines.append(f"| {row['nchan']:,} | {row['block']} | - | > {row['wall_s']} (stopped) | - |")
    lines.append(f"\n{machine()['platform']}, Python {machine()['python']}.")
    write_results("incremental", results, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
