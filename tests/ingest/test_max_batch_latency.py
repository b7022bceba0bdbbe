"""A maximum batch of invalid items must not stall the server: /healthz latency while one is
being stored, against its idle latency in the same run, through the real CLI under uvicorn."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import audit_event
from tests.conftest import query_all
from tests.served import serve

MAX_ITEMS = 50_000  # the default AUDIT_TIMELINE_INGEST_MAX_ITEMS


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[str]:
    with serve(database_url, tmp_path) as url:
        yield url


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def healthz_latencies(http: httpx.Client, *, count: int | None = None,
                      until: threading.Event | None = None) -> list[float]:  # fmt: skip
    latencies: list[float] = []
    while (count is not None and len(latencies) < count) or (until and not until.is_set()):
        started = time.perf_counter()
        assert http.get("/healthz").status_code == 200
        latencies.append(time.perf_counter() - started)
        time.sleep(0.01)
    return latencies


def invalid_batch() -> bytes:
    """MAX_ITEMS distinct items that parse but are no audit Event (each goes to quarantine)."""
    items = [{"kind": "Event", "stage": "ResponseComplete", "note": f"no auditID {i}"}
             for i in range(MAX_ITEMS)]  # fmt: skip
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    return json.dumps(body).encode()


def valid_batch() -> bytes:
    """MAX_ITEMS distinct small Events (Metadata level, as most of a real stream is)."""
    template = audit_event(level="Metadata")
    del template["annotations"], template["userAgent"]  # under the default 32 MiB body limit
    items = [{**template, "auditID": f"bulk-{i:06d}"} for i in range(MAX_ITEMS)]
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    return json.dumps(body).encode()


@pytest.mark.parametrize("kind", ["invalid", "valid"])
def test_healthz_stays_fast_during_a_maximum_batch(
    served: str, database_url: str, kind: str
) -> None:
    body = invalid_batch() if kind == "invalid" else valid_batch()
    with httpx.Client(base_url=served, timeout=120) as http:
        healthz_latencies(http, count=20)  # warm up connections and code paths
        idle = healthz_latencies(http, count=100)
        done = threading.Event()
        result: dict[str, object] = {}

        def post_batch() -> None:
            # done is set whatever happens, so a failed post fails the test instead of hanging it.
            try:
                with httpx.Client(base_url=served, timeout=300) as poster:
                    started = time.perf_counter()
                    response = poster.post(
                        "/ingest", content=body, headers={"content-type": "application/json"}
                    )
                    result["seconds"] = time.perf_counter() - started
                    result["status"] = response.status_code
                    result["body"] = response.json()
            finally:
                done.set()

        sender = threading.Thread(target=post_batch)
        sender.start()
        during = healthz_latencies(http, until=done)
        sender.join()
    assert result.get("status") == 200, result
    assert during, "no /healthz sample was taken during the batch"
    table = "quarantined_item" if kind == "invalid" else "audit_event"
    expected = {"stored": 0, "duplicates": 0, "quarantined": 0}
    expected["quarantined" if kind == "invalid" else "stored"] = MAX_ITEMS
    assert result["body"] == expected
    assert query_all(database_url, f"SELECT count(*) FROM {table}")[0][0] == MAX_ITEMS
    idle_p99, during_p99 = percentile(idle, 0.99), percentile(during, 0.99)
    figures = {
        "batch": kind,
        "batch_seconds": round(float(result["seconds"]), 2),  # type: ignore[arg-type]
        "idle_p50_ms": round(percentile(idle, 0.5) * 1000, 1),
        "idle_p99_ms": round(idle_p99 * 1000, 1),
        "during_p50_ms": round(percentile(during, 0.5) * 1000, 1),
        "during_p99_ms": round(during_p99 * 1000, 1),
        "during_max_ms": round(max(during) * 1000, 1),
        "samples_during": len(during),
    }
    # Shown with `pytest -s` (the figures of the closing note).
    sys.stdout.write(f"max-batch healthz latency: {json.dumps(figures)}\n")
    # Generous for a busy CI machine: the fix gives 20-30 ms here; main took 0.9-1.8 s for the
    # invalid batch (3 s on the machine of the issue) and 70-90 ms (max 0.7 s) for the valid.
    assert during_p99 < max(10 * idle_p99, 0.2), figures
