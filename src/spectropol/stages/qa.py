"""The qa stage: every job's QA document aggregated into the run's summary, with outlier channels
flagged and a plot of the per-channel figures (the same aggregation follows a run live on Kafka:
spectropol.qa.aggregate)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from ..options import QAOptions
from ..qa.aggregate import aggregate_documents

log = logging.getLogger(__name__)


def qa_summary(documents: Iterable[str | os.PathLike], summary_path: str | os.PathLike, plot_path: str | os.PathLike,
               options: QAOptions = QAOptions()) -> dict:
    """Aggregate the QA documents (files, or folders of them) into ``summary_path`` and ``plot_path``."""
    summary = aggregate_documents(list(documents), summary_path, plot_path, k=options.outlier_k)
    log.info("%d channels, %d outliers, %d diverged cleans", summary["channels"], len(summary["outliers"]),
             len(summary["diverged_cleans"]))
    return summary
