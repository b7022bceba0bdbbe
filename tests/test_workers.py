"""`serve` with AUDIT_TIMELINE_WORKERS=2: two worker processes answer on the one port, and
/metrics counts what every worker did, whichever one answers the scrape."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx

from app.settings import Settings, default_workers
from tests.builders import audit_event, event_list
from tests.conftest import query_all
from tests.pg import TestPostgres
from tests.served import serve


def _socket_inodes(port: int) -> set[str]:
    """Inodes of the established TCP connections whose local port is port (server side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _pids_holding(inodes: set[str]) -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            links = [
                os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")
            ]
        except OSError:
            continue
        if any(link.startswith("socket:[") and link[8:-1] in inodes for link in links):
            pids.add(int(entry))
    return pids


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_default_is_the_usable_cpus_at_most_4() -> None:
    assert 1 <= default_workers() <= min(4, len(os.sched_getaffinity(0)))
    assert Settings(workers=3).workers == 3


def test_two_workers_serve_and_metrics_add_up(postgres: TestPostgres, tmp_path: Path) -> None:
    url = postgres.create_database("workers_serve")
    with serve(url, tmp_path, WORKERS="2") as base:
        port = int(base.rsplit(":", 1)[1])
        # Connections kept open until two distinct processes hold some: both workers accept.
        clients: list[httpx.Client] = []
        pids: set[int] = set()
        try:
            while len(pids) < 2 and len(clients) < 64:
                client = httpx.Client(base_url=base)
                clients.append(client)
                assert client.get("/healthz").status_code == 200
                pids = _pids_holding(_socket_inodes(port))
        finally:
            for client in clients:
                client.close()
        assert len(pids) == 2, f"one process answered {len(clients)} connections"

        # Nagle's algorithm is off: a response does not wait for the client's delayed ACK,
        # which holds an answer at least 40 ms (all but the first few on a connection).
        with httpx.Client(base_url=base) as client:
            seconds = []
            for _ in range(30):
                started = time.perf_counter()
                client.get("/healthz")
                seconds.append(time.perf_counter() - started)
        assert sorted(seconds)[15] < 0.035, seconds

        posts = 12
        for i in range(posts):  # a connection each: the workers share them
            body = json.dumps(event_list([audit_event(), audit_event(stage=f"Bad{i}")]))
            response = httpx.post(
                f"{base}/ingest", content=body, headers={"content-type": "application/json"}
            )
            assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}
        scrapes = [httpx.get(f"{base}/metrics").text for _ in range(6)]
    assert query_all(url, "SELECT count(*) FROM audit_event") == [(posts,)]
    for text in scrapes:  # every scrape, from either worker, counts both workers' requests
        assert _metric(text, 'audit_timeline_ingest_requests_total{code="200"}') == posts
        assert (
            _metric(text, 'audit_timeline_ingested_items_total{outcome="stored",source="webhook"}')
            == posts
        )
        assert _metric(text, "audit_timeline_ingest_seconds_count") == posts
