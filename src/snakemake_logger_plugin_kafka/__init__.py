"""Snakemake logger plugin that publishes the workflow's QA documents and job lifecycle to Kafka.

    snakemake --logger kafka --logger-kafka-bootstrap-servers host:9092 --logger-kafka-topic spectropol-qa

It remembers each job's outputs from JOB_INFO; on JOB_FINISHED it reads that job's QA documents
(JSON files with a QA schema version and kind, or folders of them) and sends each as a ``qa``
message after a ``job_finished`` one. Run start and end, job start, failures and progress are sent
too. Messages the broker does not confirm go to an append-only spool that the next run sends first
(or ``spectropol qa flush``); a slow or absent broker costs at most ``close-timeout`` seconds at
the end of the run, never a job. Message format: src/spectropol/schemas/qa-message.schema.json.
"""


import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from spectropol.qa.documents import read_qa_documents
from spectropol.qa.messages import QAProducer, Spool, client_config, flush_spool, new_message

log = logging.getLogger("spectropol.kafka")
_ANNOTATION = re.compile(r" \([^()]*\)$")  # Snakemake's " (update)", " (directory)" labels


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    bootstrap_servers: Optional[str] = field(
        default=None, metadata={"help": "Kafka bootstrap servers, host:port[,host:port]", "env_var": False,
                                "required": True})
    topic: str = field(default="spectropol-qa", metadata={"help": "topic the QA messages go to", "env_var": False})
    spool: str = field(default=".snakemake/kafka-qa-spool.jsonl",
                       metadata={"help": "append-only file for messages the broker did not confirm", "env_var": False})
    security_protocol: str = field(default="PLAINTEXT", metadata={
        "help": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", "env_var": False,
        "choices": ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]})
    sasl_mechanism: Optional[str] = field(default=None, metadata={
        "help": "SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); credentials from "
                "SPECTROPOL_KAFKA_USERNAME and SPECTROPOL_KAFKA_PASSWORD", "env_var": False})
    delivery_timeout: int = field(default=15, metadata={
        "help": "seconds a message may wait for the broker before it is spooled", "env_var": False})
    close_timeout: int = field(default=10, metadata={
        "help": "seconds the end of the run waits for outstanding deliveries", "env_var": False})


def qa_documents(outputs) -> list[tuple[str, dict]]:
    """(path, document) of every QA document among a job's outputs: QA JSON files, or such files
    directly inside an output folder (not deeper: a folder of Zarr stores is not searched)."""
    return read_qa_documents([o if os.path.exists(o) else _ANNOTATION.sub("", o) for o in outputs], recursive=False)


def job_error(logs) -> str | None:
    """The one-line error a failed spectropol job left in its log ("<time> ERROR <logger>: <error>"),
    if it left one."""
    for path in logs:
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        errors = [line.split(" ERROR ", 1)[1].split(": ", 1)[-1] for line in lines if " ERROR " in line]
        if errors:
            return errors[-1]
    return None


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        self.run_id = None
        self.jobs: dict[int, dict] = {}
        self.finished = self.failed = 0
        self.producer = None
        if self.common_settings.dryrun:
            return
        settings = self.settings
        try:
            self.config = client_config(settings.bootstrap_servers, security_protocol=settings.security_protocol,
                                        sasl_mechanism=settings.sasl_mechanism)
            self.spool = Spool(settings.spool)
            self.producer = QAProducer(self.config, settings.topic, self.spool,
                                       delivery_timeout_ms=settings.delivery_timeout * 1000)
        except Exception as err:  # never let QA transport stop a workflow
            log.warning("QA to Kafka is off for this run: %s", err)
            self.producer = None

    def _send(self, kind: str, body: dict, **envelope) -> None:
        if self.producer is not None:
            self.producer.send(new_message(kind, self.run_id or "unknown", body, **envelope))

    def emit(self, record: logging.LogRecord) -> None:
        if self.producer is None:
            return
        try:
            self._handle(record)
        except Exception as err:
            log.warning("QA message for %s not sent: %s", getattr(record, "event", "record"), err)

    def _handle(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if event == LogEvent.WORKFLOW_STARTED:
            self.run_id = str(record.workflow_id)
            self._send("run_started", {"workdir": os.getcwd(), "snakefile": str(getattr(record, "snakefile_main", "")),
                                       "snakemake_version": str(getattr(record, "snakemake_version", ""))})
            # Messages a previous run could not deliver go first (in their own order).
            if self.spool.has_messages():
                delivered, left = flush_spool(self.spool, self.config, self.settings.topic,
                                              timeout_s=self.settings.delivery_timeout)
                log.info("resent %d spooled QA messages, %d still spooled", delivered, left)
        elif event == LogEvent.JOB_INFO:
            job = {"rule": record.rule_name, "wildcards": dict(record.wildcards or {}), "output": list(record.output)}
            self.jobs[record.jobid] = job
            self._send("job_started", {"outputs": job["output"]}, rule=job["rule"], job_id=record.jobid,
                       wildcards=job["wildcards"])
        elif event == LogEvent.JOB_FINISHED:
            job = self.jobs.pop(record.job_id, None)
            if job is None:
                return
            self.finished += 1
            documents = qa_documents(job["output"])
            envelope = {"rule": job["rule"], "job_id": record.job_id, "wildcards": job["wildcards"]}
            self._send("job_finished", {"qa_documents": len(documents)}, **envelope)
            for path, document in documents:
                self._send("qa", {"path": path, "document": document}, **envelope)
        elif event == LogEvent.JOB_ERROR:
            self.failed += 1
            job = self.jobs.pop(record.jobid, {"rule": record.rule_name, "wildcards": {}})
            logs = [_ANNOTATION.sub("", str(p)) for p in (getattr(record, "log", None) or [])]
            self._send("job_failed", {"error": job_error(logs) or str(record.msg or "job failed"), "logs": logs},
                       rule=job["rule"], job_id=record.jobid, wildcards=job["wildcards"])
        elif event == LogEvent.PROGRESS:
            self._send("progress", {"done": int(record.done), "total": int(record.total)})

    def close(self) -> None:
        if self.producer is not None:
            try:
                if self.run_id is not None:
                    self._send("run_finished", {"success": self.failed == 0, "jobs_finished": self.finished,
                                                "jobs_failed": self.failed})
                self.producer.close(self.settings.close_timeout)
                if self.producer.spooled:
                    log.warning("%d QA messages spooled in %s; `spectropol qa flush` or the next run sends them",
                                self.producer.spooled, self.settings.spool)
            except Exception as err:
                log.warning("QA to Kafka: %s", err)
            self.producer = None
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
