"""Prometheus metrics of one app instance (own registry, so several apps can live in one process).

Counts what came in and what became of it; exposes nothing from the events themselves. With
several `serve` workers (multiprocess_dir set), every worker's values are summed on /metrics
(prometheus_client's multiprocess mode), whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

_LAG = "audit_timeline_poller_lag_seconds"
_LAG_HELP = "Now minus the newest event time the poller has seen (NaN before the first)."


class Metrics:
    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        # The gauges' multiprocess_mode only matters with several workers: then the one
        # poller that holds the lock reports 1 and its newest event time.
        self._newest_event_timestamp = Gauge(
            "audit_timeline_poller_newest_event_timestamp",
            "Unix time of the newest event the poller has seen (0 before the first).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.ingested = Counter(
            "audit_timeline_ingested_items",
            "Items received, by source and outcome (stored, duplicate, quarantined).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.ingest_requests = Counter(
            "audit_timeline_ingest_requests",
            "Ingest requests by HTTP status code.",
            ["code"],
            registry=self.registry,
        )
        self.ingest_rejected = Counter(
            "audit_timeline_ingest_rejected",
            "Ingest requests refused before their body was read, by reason (no_credentials,"
            " unknown_token, tokens_not_configured, invalid_cluster, cluster_not_allowed).",
            ["reason"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "audit_timeline_ingest_seconds",
            "Time to parse, normalise and commit one ingest request.",
            registry=self.registry,
        )
        self._newest_event_at: datetime | None = None
        if multiprocess_dir is None:
            self.poller_lag_seconds = Gauge(_LAG, _LAG_HELP, registry=self.registry)
            self.poller_lag_seconds.set_function(self._poller_lag)
        self.poller_documents = Counter(
            "audit_timeline_poller_documents",
            "Documents the poller read from Elasticsearch, and what became of them"
            " (read, stored, duplicate, quarantined, skipped).",
            ["outcome"],
            registry=self.registry,
        )
        self.poller_errors = Counter(
            "audit_timeline_poller_errors",
            "Failed poll attempts, by cause (elasticsearch, database, other).",
            ["kind"],
            registry=self.registry,
        )
        self.poller_active = Gauge(
            "audit_timeline_poller_active",
            "1 while this instance is the active poller (holds the lock), else 0.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    @property
    def poller_newest_event_at(self) -> datetime | None:
        return self._newest_event_at

    @poller_newest_event_at.setter
    def poller_newest_event_at(self, value: datetime | None) -> None:
        self._newest_event_at = value
        if value is not None:
            self._newest_event_timestamp.set(value.timestamp())

    def exposition(self) -> bytes:
        """The text /metrics answers: this process's metrics, or every worker's."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        # A function gauge cannot be shared between processes: the lag is worked out here,
        # from the newest event time of the worker whose poller holds the lock.
        newest = registry.get_sample_value("audit_timeline_poller_newest_event_timestamp")
        lag = datetime.now(UTC).timestamp() - newest if newest else float("nan")
        registry.register(_Fixed(GaugeMetricFamily(_LAG, _LAG_HELP, value=lag)))
        return generate_latest(registry)

    def close(self) -> None:
        """Drop this worker's live gauges from the shared values (several workers only)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess_dir))  # type: ignore[no-untyped-call]

    def count_store(self, source: str, *, stored: int, duplicates: int, quarantined: int) -> None:
        """Add one batch's outcome."""
        self.ingested.labels(source, "stored").inc(stored)
        self.ingested.labels(source, "duplicate").inc(duplicates)
        self.ingested.labels(source, "quarantined").inc(quarantined)

    def _poller_lag(self) -> float:
        if self.poller_newest_event_at is None:
            return float("nan")
        return (datetime.now(UTC) - self.poller_newest_event_at).total_seconds()


class _Fixed(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric
