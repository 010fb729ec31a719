"""QA to Kafka: throughput of the logger plugin to a broker, and what `--logger kafka` adds to a run.

1. Throughput: the plugin's handler is fed the records Snakemake would send for N jobs, each with
   one QA document on disk (job_started, job_finished and qa messages per job), and its close()
   waits for the broker's acknowledgements: messages per second from first record to last ack.
2. Overhead: the demo workflow (config/config.yaml, as `make run`) run alternately without and with
   `--logger kafka` (local Tansu broker), wall time of each.

    python benchmarks/kafka.py [--jobs 5000] [--repeats 2] [--overhead-config FILE]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from common import REPO, SNAKEMAKE, machine, write_results  # noqa: E402
from kafka_broker import Broker, free_port  # noqa: E402


class _Settings:
    def __init__(self, **values):
        self.__dict__.update(values)


def throughput(address: str, jobs: int, workdir: Path) -> dict:
    from snakemake_interface_logger_plugins.common import LogEvent

    from snakemake_logger_plugin_kafka import LogHandler
    from spectropol.qa.documents import write_qa

    for k in range(jobs):
        write_qa(workdir / f"qa/{k:05d}.json", "split", {"channel": k, "freq_hz": 1e8 + k, "rows_read": 1000,
                 "rows_kept": 990, "visibilities_usable": {"I": 990}, "flagged_fraction": 0.01,
                 "nonfinite_visibilities": 0, "stokes_present": ["I", "Q", "U", "V"]}, rule="split_channel")
    settings = _Settings(bootstrap_servers=address, topic="bench", spool=str(workdir / "spool.jsonl"),
                         security_protocol="PLAINTEXT", sasl_mechanism=None, delivery_timeout=30, close_timeout=60)
    common = _Settings(dryrun=False)

    def record(event, **fields):
        r = logging.LogRecord("snakemake", logging.INFO, __file__, 0, "", None, None)
        r.event = event
        r.__dict__.update(fields)
        return r

    handler = LogHandler(common, settings)
    start = time.perf_counter()
    handler.emit(record(LogEvent.WORKFLOW_STARTED, workflow_id="bench-run", snakefile_main="Snakefile",
                        snakemake_version="9"))
    for k in range(jobs):
        name = f"{k:05d}"
        handler.emit(record(LogEvent.JOB_INFO, jobid=k, rule_name="split_channel", wildcards={"block": name},
                            output=[str(workdir / f"qa/{name}.json")]))
        handler.emit(record(LogEvent.JOB_FINISHED, job_id=k))
    emitted = time.perf_counter() - start
    producer = handler.producer
    handler.close()
    total = time.perf_counter() - start
    messages = 3 * jobs + 2
    return {"jobs": jobs, "messages": messages, "delivered": producer.delivered, "spooled": producer.spooled,
            "emit_s": round(emitted, 3), "total_s": round(total, 3), "messages_per_s": round(messages / total),
            "emit_us_per_message": round(1e6 * emitted / messages, 1)}


def overhead(address: str, config: Path | None, repeats: int) -> dict:
    times = {"plain": [], "kafka": []}
    for _ in range(repeats):
        for mode in ("plain", "kafka"):
            with tempfile.TemporaryDirectory() as tmp:
                command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", tmp, "--cores", "2", "--quiet",
                           "all"]
                if config is not None:
                    command += ["--configfile", str(config)]
                if mode == "kafka":
                    command += ["--logger", "kafka", "--logger-kafka-bootstrap-servers", address,
                                "--logger-kafka-topic", "overhead"]
                start = time.perf_counter()
                subprocess.run(command, check=True, cwd=tmp, capture_output=True)
                times[mode].append(time.perf_counter() - start)
                print(mode, round(times[mode][-1], 1), flush=True)
    plain, kafka = statistics.mean(times["plain"]), statistics.mean(times["kafka"])
    return {"config": str(config or "config/config.yaml"), "plain_s": [round(t, 1) for t in times["plain"]],
            "kafka_s": [round(t, 1) for t in times["kafka"]], "overhead": round(kafka / plain - 1, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--overhead-config", type=Path, help="config for the overhead runs (default: the demo)")
    args = parser.parse_args()
    broker = Broker(free_port()).start(topics=("bench", "overhead"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rate = throughput(broker.address, args.jobs, Path(tmp))
        print(rate, flush=True)
        cost = overhead(broker.address, args.overhead_config, args.repeats)
    finally:
        broker.stop()
    results = {"machine": machine(), "throughput": rate, "overhead": cost}
    table = f"""## QA to Kafka (benchmarks/kafka.py)

Tansu 0.6.0 (in-memory storage) on 127.0.0.1, idempotent producer, acks=all, topic of 3 partitions.

Throughput: the logger plugin fed the records of {rate['jobs']:,} finished jobs with one QA document each
({rate['messages']:,} messages: job started, job finished, QA document): {rate['messages_per_s']:,} messages/s
from the first record to the last acknowledgement ({rate['total_s']} s; handling a record costs the
scheduler {rate['emit_us_per_message']} us per message); delivered {rate['delivered']:,}, spooled {rate['spooled']}.

Overhead of `--logger kafka` on the demo run ({cost['config']}, 2 cores), runs alternated:

| run | wall time (s) |
|---|---|
| without | {', '.join(map(str, cost['plain_s']))} |
| with `--logger kafka` | {', '.join(map(str, cost['kafka_s']))} |

Mean overhead: **{100 * cost['overhead']:+.1f}%**. {machine()['platform']}.
"""
    write_results("kafka", results, table)
    print(table)


if __name__ == "__main__":
    main()
