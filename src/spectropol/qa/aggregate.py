"""The QA aggregator: per-channel statistics of a run gathered from QA messages (Kafka) or QA
documents (disk), outliers flagged, and a summary written as JSON and a plot.

The same Aggregation serves both: on disk each document is read once; from Kafka each ``qa``
message carries one document, and lifecycle messages add failed jobs and the run's end. Messages
are deduplicated by their id (a resend from the spool repeats some).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..io.stores import atomic_path, write_json
from .documents import read_qa_documents
from .messages import validation_error

log = logging.getLogger(__name__)


class Aggregation:
    """Channel statistics, failures and outliers of one run (or of all runs seen)."""

    def __init__(self, k: float = 3.0, printer: Callable[[str], None] | None = None):
        self.k = k
        self.print = printer
        self.channels: dict[int, dict] = {}
        # Finite Stokes I rms of the channels so far, kept sorted: the live line's median costs
        # nothing per channel instead of a pass over all channels (65,536 of them in a survey).
        self._i_rms: list[float] = []
        self.products: dict[str, dict] = {}
        self.failed_jobs: list[dict] = []
        self.runs: dict[str, dict] = {}
        self.seen: set[str] = set()
        self.skipped = 0
        self.duplicates = 0

    # -- input ------------------------------------------------------------------------------
    def add_document(self, document: dict, source: str = "") -> None:
        kind = document.get("kind")
        if kind in ("split", "channel_image"):
            channel = int(document["channel"])
            entry = self.channels.setdefault(channel, {"channel": channel, "freq_hz": document.get("freq_hz")})
            if kind == "split":
                entry["flagged_fraction"] = document.get("flagged_fraction")
            else:
                final = document.get("restored") or document["stokes"]
                self._replace_i_rms(entry.get("rms", {}).get("I"), final.get("I", {}).get("mad_rms"))
                entry["rms"] = {s: final[s]["mad_rms"] for s in final}
                entry["peak"] = {s: final[s]["peak"] for s in final}
                clean = document.get("clean")
                entry["clean_diverged"] = bool(clean and clean.get("diverged"))
                entry["clean_iterations"] = clean.get("iterations") if clean else None
                beam = document.get("beam") or {}
                entry["beam_arcsec"] = [None if beam.get(k) is None else 3600.0 * beam[k]
                                        for k in ("bmaj_deg", "bmin_deg")]
                if self.print:
                    self.print(self._channel_line(entry))
        else:
            self.products[kind] = {k: v for k, v in document.items() if k not in ("schema_version",)}
            if self.print:
                self.print(f"{kind:>14}  {source}")

    def _replace_i_rms(self, old, new) -> None:
        """A channel's Stokes I rms in the sorted list (a later document for it replaces the first)."""
        if old is not None and np.isfinite(old):
            del self._i_rms[bisect.bisect_left(self._i_rms, old)]
        if new is not None and np.isfinite(new):
            bisect.insort(self._i_rms, new)

    def add_message(self, message: dict, where: str = "") -> bool:
        """Take one message; returns True when it is the end of a run."""
        problem = validation_error(message)
        if problem is not None:
            self.skipped += 1
            log.warning("skipped message %s: %s", where, problem)
            return False
        if message["message_id"] in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(message["message_id"])
        run = self.runs.setdefault(message["run_id"], {"started": None, "finished": None, "success": None})
        kind, body = message["type"], message["body"]
        if kind == "run_started":
            run["started"] = message["time_utc"]
        elif kind == "qa":
            self.add_document(body["document"], body["path"])
        elif kind == "job_failed":
            failure = {"rule": message["rule"], "job_id": message["job_id"], "wildcards": message["wildcards"],
                       "error": body["error"]}
            self.failed_jobs.append(failure)
            if self.print:
                self.print(f"FAILED {message['rule']} {message['wildcards']}: {body['error']}")
        elif kind == "run_finished":
            run |= {"finished": message["time_utc"], "success": body["success"]}
            return True
        return False

    # -- output -----------------------------------------------------------------------------
    def _channel_line(self, entry: dict) -> str:
        rms, peak = entry["rms"].get("I"), entry["peak"].get("I")
        n = len(self._i_rms)
        median = (self._i_rms[(n - 1) // 2] + self._i_rms[n // 2]) / 2 if n else None
        flags = self._flags(entry, {"I": median})
        freq = f"{entry['freq_hz'] / 1e6:10.4f} MHz" if entry.get("freq_hz") else " " * 14
        text = f"channel {entry['channel']:5d} {freq}  I rms {_fmt(rms)}  peak {_fmt(peak)}  Jy/beam"
        return text + (f"  << {', '.join(flags)}" if flags else "")

    def _median_rms(self, stokes: str) -> float | None:
        values = [e["rms"].get(stokes) for e in self.channels.values() if "rms" in e]
        values = [v for v in values if v is not None and np.isfinite(v)]
        return float(np.median(values)) if values else None

    def _flags(self, entry: dict, medians: dict) -> list[str]:
        flags = []
        for stokes, median in medians.items():
            rms = entry.get("rms", {}).get(stokes)
            if median and rms is not None and rms > self.k * median:
                flags.append(f"{stokes} rms {rms / median:.1f}x median")
        if entry.get("clean_diverged"):
            flags.append("CLEAN diverged")
        if entry.get("flagged_fraction") == 1.0 or ("rms" in entry and entry["rms"].get("I") is None):
            flags.append("no data")
        return flags

    def summary(self) -> dict:
        stokes = sorted({s for e in self.channels.values() for s in e.get("rms", {})}, key="IQUV".index)
        medians = {s: self._median_rms(s) for s in stokes}
        channels = [self.channels[c] for c in sorted(self.channels)]
        outliers = [{"channel": e["channel"], "freq_hz": e.get("freq_hz"), "reasons": self._flags(e, medians)}
                    for e in channels if self._flags(e, medians)]
        return {
            "k": self.k, "channels": len(channels), "median_rms": medians, "outliers": outliers,
            "failed_jobs": self.failed_jobs,
            "diverged_cleans": [e["channel"] for e in channels if e.get("clean_diverged")],
            "products": self.products, "runs": self.runs,
            "messages": {"distinct": len(self.seen), "duplicates": self.duplicates, "skipped": self.skipped},
            "per_channel": channels,
        }

    def save_state(self, path: str | os.PathLike) -> None:
        """What a restarted aggregator needs to continue (with the committed offsets)."""
        write_json(path, {"k": self.k, "channels": list(self.channels.values()), "products": self.products,
                          "failed_jobs": self.failed_jobs, "runs": self.runs, "seen": sorted(self.seen),
                          "skipped": self.skipped, "duplicates": self.duplicates})

    def load_state(self, path: str | os.PathLike) -> None:
        state = json.loads(Path(path).read_text())
        self.channels = {int(e["channel"]): e for e in state["channels"]}
        self._i_rms = sorted(e["rms"]["I"] for e in self.channels.values()
                             if e.get("rms", {}).get("I") is not None and np.isfinite(e["rms"]["I"]))
        self.products, self.failed_jobs, self.runs = state["products"], state["failed_jobs"], state["runs"]
        self.seen, self.skipped, self.duplicates = set(state["seen"]), state["skipped"], state["duplicates"]

    def write(self, summary_path: str | os.PathLike, plot_path: str | os.PathLike | None) -> dict:
        summary = self.summary()
        write_json(summary_path, summary)
        if plot_path is not None:
            plot_summary(summary, plot_path)
        return summary


def _fmt(value) -> str:
    return "    nan  " if value is None or not np.isfinite(value) else f"{value:9.3e}"


def _series(channels: list[dict], get) -> np.ndarray:
    """One value per channel (NaN where a channel lacks it)."""
    values = []
    for entry in channels:
        try:
            value = get(entry)
        except (KeyError, TypeError, IndexError):
            value = None
        values.append(np.nan if value is None else float(value))
    return np.array(values, dtype=float)


def plot_summary(summary: dict, path: str | os.PathLike) -> None:
    """Per channel against frequency: the rms and |peak| of each Stokes image, the restoring beam,
    the flagged fraction and CLEAN's iterations; outliers circled, diverged CLEANs marked by red
    bands across every panel."""
    from ..plotting import pyplot

    plt = pyplot()
    everything = summary["per_channel"]
    channels = [e for e in everything if "rms" in e]
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    x = np.array([e.get("freq_hz") or np.nan for e in channels]) / 1e6
    for stokes in summary["median_rms"]:
        axes[0].plot(x, _series(channels, lambda e: e["rms"].get(stokes)), ".-", label=stokes)
        axes[1].plot(x, np.abs(_series(channels, lambda e: e["peak"].get(stokes))), ".-", label=stokes)
    outlier_channels = {o["channel"] for o in summary["outliers"]}
    for e, xf in zip(channels, x):
        if e["channel"] in outlier_channels and e["rms"].get("I") is not None:
            axes[0].plot(xf, e["rms"]["I"], "o", mfc="none", mec="red", ms=10)
    for k, label in enumerate(("major axis", "minor axis")):
        axes[2].plot(x, _series(channels, lambda e: e["beam_arcsec"][k]), ".-", label=label)
    x_all = np.array([e.get("freq_hz") or np.nan for e in everything]) / 1e6
    flagged = _series(everything, lambda e: e.get("flagged_fraction"))
    axes[3].plot(x_all, flagged, ".-", color="C0")
    axes[3].set_ylim(0.0, max(0.05, 1.1 * float(np.nanmax(flagged, initial=0.0))))
    iterations = axes[3].twinx()
    iterations.plot(x, _series(channels, lambda e: e.get("clean_iterations")), ".", color="C1")
    iterations.set_ylabel("CLEAN iterations", color="C1")
    diverged = set(summary.get("diverged_cleans", []))
    for e, xf in zip(channels, x):
        if e["channel"] in diverged and np.isfinite(xf):
            for axis in axes:
                axis.axvline(xf, color="red", alpha=0.3, lw=4)
    axes[0].set_ylabel("image rms (Jy/beam)")
    axes[1].set_ylabel("|peak| (Jy/beam)")
    axes[2].set_ylabel("restoring beam (arcsec)")
    axes[3].set_ylabel("flagged fraction", color="C0")
    axes[3].set_xlabel("frequency (MHz)")
    for axis in axes[:2]:
        axis.set_yscale("log")
    axes[0].legend(ncol=4, fontsize=8)
    axes[2].legend(fontsize=8)
    title = (f"{summary['channels']} channels: {len(summary['outliers'])} outliers (rms > {summary['k']} x median, "
             f"circled), {len(diverged)} diverged CLEANs (red)")
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as partial:
        fig.savefig(partial, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def aggregate_documents(paths: Iterable[str | os.PathLike], summary_path, plot_path=None, *, k: float = 3.0,
                        printer=None) -> dict:
    """The aggregation of QA documents on disk (files, or folders of them)."""
    aggregation = Aggregation(k, printer)
    for path, document in read_qa_documents(paths):
        aggregation.add_document(document, path)
    return aggregation.write(summary_path, plot_path)


def aggregate_kafka(config: dict, topic: str, group_id: str, summary_path, plot_path=None, *, run_id: str | None = None,
                    timeout_s: float = 600.0, idle_timeout_s: float | None = None, k: float = 3.0,
                    printer=None) -> dict:
    """Follow ``topic`` as consumer group ``group_id`` (resuming from its committed offsets) until
    the finish event of ``run_id`` arrives (any run's finish when ``run_id`` is None and
    ``idle_timeout_s`` is not given), or ``timeout_s`` passes, or nothing arrived for
    ``idle_timeout_s``. Messages of other runs are skipped when ``run_id`` is given. Malformed
    messages are logged and skipped. Offsets are committed together with a state file beside the
    summary, so a restarted aggregator continues where it stopped."""
    from confluent_kafka import Consumer, KafkaError

    aggregation = Aggregation(k, printer)
    state_path = Path(f"{summary_path}.state")
    if state_path.exists():
        aggregation.load_state(state_path)  # a restart: offsets and what was counted agree
    consumer = Consumer(config | {"group.id": group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                  "session.timeout.ms": 6000, "enable.partition.eof": True})
    consumer.subscribe([topic])

    def checkpoint():
        # State first, then offsets: after a crash between the two, messages are read again and
        # dropped as duplicates; the other order would lose them.
        aggregation.save_state(state_path)
        try:
            consumer.commit(asynchronous=False)
        except Exception as err:  # nothing consumed yet, or the group is rebalancing
            log.debug("commit: %s", err)

    deadline = time.monotonic() + timeout_s
    last_message = time.monotonic()
    # Order holds within a partition only: after the end event, read on until every partition
    # has reported its end, so that messages of the run on other partitions are counted too.
    draining, at_end = False, set()
    try:
        while time.monotonic() < deadline:
            if idle_timeout_s is not None and time.monotonic() - last_message > idle_timeout_s:
                break
            if draining and at_end >= {(p.topic, p.partition) for p in consumer.assignment()}:
                break
            record = consumer.poll(0.5)
            if record is None:
                continue
            if record.error():
                if record.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add((record.topic(), record.partition()))
                else:
                    log.warning("consumer: %s", record.error())
                continue
            at_end.discard((record.topic(), record.partition()))
            last_message = time.monotonic()
            where = f"{record.topic()}[{record.partition()}]@{record.offset()}"
            try:
                message = json.loads(record.value())
            except (ValueError, TypeError, UnicodeDecodeError):
                aggregation.skipped += 1
                log.warning("skipped message %s: not JSON", where)
                continue
            if run_id is not None and isinstance(message, dict) and message.get("run_id") != run_id:
                continue
            finished = aggregation.add_message(message, where)
            if finished or len(aggregation.seen) % 500 == 0:
                checkpoint()
            if finished and (run_id is not None or idle_timeout_s is None):
                draining = True
    finally:
        checkpoint()
        consumer.close()
    return aggregation.write(summary_path, plot_path)
