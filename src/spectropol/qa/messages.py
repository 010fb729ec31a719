"""QA messages on Kafka: the envelope, its schema, the client settings, a spool for messages the
broker did not take, and sending (resending) them.

The producer is idempotent with acks=all, and a message that is not confirmed within its delivery
timeout is appended to the spool (a JSON-lines file), to be sent by the next run or by
``spectropol qa flush``. Every message carries a unique id that a resend keeps, so a consumer drops
the duplicates a resend can make. Nothing here blocks a workflow for longer than the time given
to ``QAProducer.close``.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache, partial
from pathlib import Path

from ..errors import fail
from .documents import schema

log = logging.getLogger(__name__)

MESSAGE_SCHEMA_VERSION = "1.0"
# Credentials come from the environment only, never from a command line or a config file.
USERNAME_VARIABLE = "SPECTROPOL_KAFKA_USERNAME"
PASSWORD_VARIABLE = "SPECTROPOL_KAFKA_PASSWORD"


def new_message(kind: str, run_id: str, body: dict, *, rule: str | None = None, job_id: int | None = None,
                wildcards: dict | None = None) -> dict:
    """A message with a fresh id and the time and host of now."""
    return {
        "schema_version": MESSAGE_SCHEMA_VERSION, "message_id": uuid.uuid4().hex, "type": kind, "run_id": str(run_id),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "host": socket.gethostname(), "rule": rule, "job_id": job_id,
        "wildcards": {str(k): str(v) for k, v in (wildcards or {}).items()}, "body": body,
    }


def message_key(message: dict) -> bytes:
    """Messages about one channel block share a key, so they land on one partition in order;
    others are keyed by rule, and run events by the run."""
    wildcards = message["wildcards"]
    if wildcards:
        return ("/".join(f"{k}={v}" for k, v in sorted(wildcards.items()))).encode()
    return (message["rule"] or message["run_id"]).encode()


@cache
def _validator():
    import jsonschema
    from referencing import Registry, Resource

    schemas = [schema("qa-message"), schema("qa")]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
    return jsonschema.Draft202012Validator(schemas[0], registry=registry)


def validation_error(message) -> str | None:
    """Why ``message`` is not a valid QA message (one line), or None if it is."""
    if not isinstance(message, dict):
        return "not a JSON object"
    if message.get("schema_version") != MESSAGE_SCHEMA_VERSION:
        return f"schema version {message.get('schema_version')!r}, this reader knows {MESSAGE_SCHEMA_VERSION!r}"
    from jsonschema.exceptions import best_match

    # best_match ranks the errors by relevance; sorting their paths would compare ints with strings
    error = best_match(_validator().iter_errors(message))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "message"
    return f"{where}: {' '.join(error.message.split())[:200]}"


def client_config(bootstrap_servers: str, *, security_protocol: str = "PLAINTEXT", sasl_mechanism: str | None = None,
                  **extra) -> dict:
    """librdkafka settings shared by producer and consumer. SASL credentials are read from
    SPECTROPOL_KAFKA_USERNAME and SPECTROPOL_KAFKA_PASSWORD."""
    config = {"bootstrap.servers": bootstrap_servers, "security.protocol": security_protocol, "client.id": "spectropol"}
    if sasl_mechanism:
        username, password = os.environ.get(USERNAME_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
        if not username or not password:
            raise fail(None,
                       f"SASL mechanism {sasl_mechanism} needs {USERNAME_VARIABLE} and {PASSWORD_VARIABLE} "
                       "in the environment")
        config |= {"sasl.mechanism": sasl_mechanism, "sasl.username": username, "sasl.password": password}
    return config | extra


class Spool:
    """An append-only JSON-lines file of messages not yet confirmed by the broker. Appends and the
    rewrite after a resend hold an exclusive lock, so a workflow and `spectropol qa flush` can
    share one spool."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, messages: Iterable[dict]) -> int:
        lines = [json.dumps(m, separators=(",", ":")) + "\n" for m in messages]
        if lines:
            with self.locked(), open(self.path, "a") as handle:
                handle.writelines(lines)
                handle.flush()
                os.fsync(handle.fileno())
        return len(lines)

    def _read(self) -> list[dict]:
        messages = []
        if not self.path.exists():
            return messages
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                messages.append(json.loads(line))
            except ValueError:
                # A line cut short by a crash mid-append; what follows is still good.
                log.warning("%s:%d: not a JSON message, skipped", self.path, number)
        return messages

    def has_messages(self) -> bool:
        """Cheap: whether anything is spooled at all (the file is not read)."""
        return self.path.exists() and self.path.stat().st_size > 0

    @contextmanager
    def draining(self) -> Iterator[tuple[list[dict], list[dict]]]:
        """(messages in the spool, list to fill with those still not delivered); on exit the spool
        holds just the latter. The lock is held throughout, so nothing appended meanwhile is lost."""
        with self.locked():
            messages, remaining = self._read(), []
            yield messages, remaining
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text("".join(json.dumps(m, separators=(",", ":")) + "\n" for m in remaining))
            partial.replace(self.path)


def produce(producer, topic: str, message: dict, on_delivery) -> None:
    """Queue one message: JSON value, key by channel block (message_key), id in a header."""
    producer.produce(topic, json.dumps(message).encode(), key=message_key(message),
                     headers=[("message_id", message["message_id"].encode())], on_delivery=on_delivery)


class QAProducer:
    """Sends messages to one topic without ever blocking the caller for long: produce() queues,
    delivery reports come back on poll(), and whatever is not confirmed by close() is spooled."""

    def __init__(self, config: dict, topic: str, spool: Spool, *, delivery_timeout_ms: int = 15000):
        from confluent_kafka import Producer

        self.topic, self.spool = topic, spool
        self.pending: dict[str, dict] = {}
        self.delivered = 0
        self.spooled = 0
        self._producer = Producer(config | {
            "enable.idempotence": True, "acks": "all",
            # Fail a delivery after this long instead of librdkafka's default five minutes, so an
            # absent broker costs a run at most this, and the message goes to the spool.
            "message.timeout.ms": delivery_timeout_ms,
            "linger.ms": 20,
        })

    def _report(self, message_id: str, error, record) -> None:
        message = self.pending.pop(message_id, None)
        if message is None:
            return
        if error is None:
            self.delivered += 1
        else:
            log.warning("QA message %s not delivered (%s); spooled", message_id, error)
            self.spooled += self.spool.append([message])

    def send(self, message: dict) -> None:
        from confluent_kafka import KafkaException

        self.pending[message["message_id"]] = message
        try:
            produce(self._producer, self.topic, message, partial(self._report, message["message_id"]))
        except (BufferError, KafkaException) as err:
            log.warning("QA message %s not queued (%s); spooled", message["message_id"], err)
            self.pending.pop(message["message_id"], None)
            self.spooled += self.spool.append([message])
        self._producer.poll(0)

    def close(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for outstanding deliveries; spool what is still unconfirmed."""
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            self._producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        if self.pending:
            left = list(self.pending.values())
            self.pending.clear()  # late reports for these are ignored: they are in the spool
            self.spooled += self.spool.append(left)
            self._producer.purge()
            self._producer.flush(0)


def flush_spool(spool: Spool, config: dict, topic: str, *, timeout_s: float = 30.0) -> tuple[int, int]:
    """Resend every spooled message; returns (delivered, still spooled)."""
    from confluent_kafka import Producer

    with spool.draining() as (messages, remaining):
        if not messages:
            return 0, 0
        outcome: dict[str, bool] = {}

        def report(message_id, error, record):
            outcome[message_id] = error is None
            if error is not None:
                log.warning("spooled message %s not delivered: %s", message_id, error)

        producer = Producer(config | {"enable.idempotence": True, "acks": "all",
                                      "message.timeout.ms": int(timeout_s * 1000)})
        for message in messages:
            callback = partial(report, message["message_id"])
            try:
                produce(producer, topic, message, callback)
            except BufferError:  # the local queue is full: let it drain, then go on
                producer.flush(timeout_s)
                produce(producer, topic, message, callback)
            producer.poll(0)
        producer.flush(timeout_s + 5)
        remaining.extend(m for m in messages if not outcome.get(m["message_id"], False))
        producer.purge()
        return len(messages) - len(remaining), len(remaining)
