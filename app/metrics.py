"""Prometheus metrics of one app instance (own registry, so several apps can live in one process).

Counts what came in and what became of it; exposes nothing from the events themselves.
"""

from __future__ import annotations

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
        self.ingest_seconds = Histogram(
            "audit_timeline_ingest_seconds",
            "Time to parse, normalise and commit one ingest request.",
            registry=self.registry,
        )
        self.poller_lag_seconds = Gauge(
            "audit_timeline_poller_lag_seconds",
            "Now minus the newest event time the poller has stored.",
            registry=self.registry,
        )

    def count_store(self, source: str, *, stored: int, duplicates: int, quarantined: int) -> None:
        """Add one batch's outcome."""
        self.ingested.labels(source, "stored").inc(stored)
        self.ingested.labels(source, "duplicate").inc(duplicates)
        self.ingested.labels(source, "quarantined").inc(quarantined)
