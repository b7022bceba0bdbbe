"""Prometheus metrics of one app instance (own registry, so several apps can live in one process).

Counts what came in and what became of it; exposes nothing from the events themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.poller_lag_seconds = Gauge(
            "audit_timeline_poller_lag_seconds",
            "Now minus the newest event time the poller has seen (NaN before the first).",
            registry=self.registry,
        )
        self.poller_newest_event_at: datetime | None = None
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
        )

    def count_store(self, source: str, *, stored: int, duplicates: int, quarantined: int) -> None:
        """Add one batch's outcome."""
        self.ingested.labels(source, "stored").inc(stored)
        self.ingested.labels(source, "duplicate").inc(duplicates)
        self.ingested.labels(source, "quarantined").inc(quarantined)

    def _poller_lag(self) -> float:
        if self.poller_newest_event_at is None:
            return float("nan")
        return (datetime.now(UTC) - self.poller_newest_event_at).total_seconds()
