"""`serve` with two workers and ES_URL: each worker runs a poller, one holds the lock and polls,
the other stands by; every document is stored once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from app.poller.loop import lock_key
from tests.conftest import query_all, requires_fixtures
from tests.pg import TestPostgres
from tests.poller.es_data import (
    INDEX_PATTERN,
    TENANT,
    bulk_index,
    create_indices,
    generated,
    v1_events,
)
from tests.served import serve

pytestmark = [pytest.mark.es, requires_fixtures]


def test_one_of_two_workers_polls(es_url: str, postgres: TestPostgres, tmp_path: Path) -> None:
    create_indices(es_url)
    events = v1_events()[:15]
    bulk_index(
        es_url, [(TENANT, {**e, "generated_time": generated(i)}) for i, e in enumerate(events)]
    )
    url = postgres.create_database("workers_poll")
    settings = {"ES_URL": es_url, "ES_INDEX": INDEX_PATTERN, "ES_POLL_INTERVAL": "0.2"}
    with serve(url, tmp_path, WORKERS="2", **settings) as base:
        deadline = time.monotonic() + 30
        while query_all(url, "SELECT count(*) FROM audit_event")[0][0] < 15:
            assert time.monotonic() < deadline, "the documents were not stored in 30 s"
            time.sleep(0.2)
        # A new connection each time: answers come from both workers, until both were seen.
        states: set[tuple[bool, str]] = set()
        for _ in range(60):
            poller = httpx.get(f"{base}/readyz").json()["poller"]
            states.add((poller["is_active"], poller["state"]))
            if {active for active, _ in states} == {True, False}:
                break
        metrics = httpx.get(f"{base}/metrics").text
        # The poller's lock, not the short ones ingest and partition creation take meanwhile.
        key = lock_key(INDEX_PATTERN) & (2**64 - 1)
        locks = query_all(
            url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            (key >> 32, key & 0xFFFFFFFF),
        )
    assert {active for active, _ in states} == {True, False}, states
    assert (False, "standby") in states
    assert locks == [(1,)]
    assert "audit_timeline_poller_active 1.0" in metrics
    assert 'audit_timeline_poller_documents_total{outcome="stored"} 15.0' in metrics
    assert query_all(url, "SELECT count(*) FROM audit_event") == [(15,)]
