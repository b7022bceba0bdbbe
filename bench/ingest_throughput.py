"""Ingest throughput: POST /ingest on a real uvicorn server vs the store path alone vs raw COPY.

Run: .venv/bin/python bench/ingest_throughput.py [--events N]
Starts its own embedded PostgreSQL in a temporary directory; prints events/s and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

import httpx  # noqa: E402
import psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audit.intake import RawItem, prepare_batch  # noqa: E402
from app.audit.queries import store_batch  # noqa: E402
from app.audit.redact import Redactor  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.demo import fixture_files, generate_events  # noqa: E402
from app.migrate import upgrade_to_head  # noqa: E402
from tests.pg import temporary_postgres  # noqa: E402

BATCH = 400
COLUMNS = [
    "cluster", "audit_id", "stage", "level", "verb", "request_uri", "api_group", "api_version",
    "resource", "subresource", "namespace", "name", "username", "user_uid", "user_groups",
    "impersonated_user", "impersonated_groups", "source_ips", "user_agent", "response_code",
    "response_status", "response_reason", "response_message", "authz_decision", "authz_reason",
    "requested_at", "stage_at", "source", "source_meta", "request_object", "response_object",
    "raw", "is_redacted",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE audit_event, quarantined_item RESTART IDENTITY")
        conn.execute("VACUUM ANALYZE audit_event")


def batches(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                    "items": events[i : i + BATCH]}).encode()
        for i in range(0, len(events), BATCH)
    ]  # fmt: skip


async def post_all(base: str, bodies: list[bytes], senders: int) -> int:
    queue = list(bodies)
    stored = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal stored
        while queue:
            body = queue.pop()
            response = await client.post(
                "/ingest",
                content=body,
                params={"cluster": "bench"},
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()
            stored += response.json()["stored"]

    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await asyncio.gather(*(sender(client) for _ in range(senders)))
    return stored


def measure_http(url: str, bodies: list[bytes], data_dir: Path, senders: int) -> tuple[float, int]:
    port = free_port()
    env = {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": url,
        "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
        "AUDIT_TIMELINE_LOG_LEVEL": "WARNING",
        "AUDIT_TIMELINE_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        started = time.perf_counter()
        stored = asyncio.run(post_all(base, bodies, senders))
        return time.perf_counter() - started, stored
    finally:
        server.terminate()
        server.wait(10)


async def store_path(url: str, events: list[dict[str, Any]], redactor: Redactor) -> float:
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        items = [RawItem(raw=b"", value=json.loads(json.dumps(e))) for e in events[i : i + BATCH]]
        batch = prepare_batch(items, cluster="bench", source="webhook", redactor=redactor)
        async with sessionmaker.begin() as session:
            await store_batch(session, events=batch.events, quarantined=[], cluster="bench",
                              source="webhook")  # fmt: skip
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed


def copy_baseline(url: str, events: list[dict[str, Any]], redactor: Redactor) -> float:
    """COPY already-normalised rows into a table with the same indexes: the database's floor."""
    items = [RawItem(raw=b"", value=e) for e in json.loads(json.dumps(events))]
    rows = prepare_batch(items, cluster="bench", source="webhook", redactor=redactor).events
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_baseline")
        conn.execute("CREATE TABLE copy_baseline (LIKE audit_event INCLUDING ALL)")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY copy_baseline ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(
                    [json.dumps(row[c]) if c in ("source_meta", "request_object",
                                                 "response_object", "raw") and row[c] is not None
                     else row[c] for c in COLUMNS]
                )  # fmt: skip
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE copy_baseline")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--senders", type=int, default=2)
    args = parser.parse_args()
    events = list(generate_events(args.events, seed=11))
    size = sum(len(json.dumps(e)) for e in events)
    redactor = Redactor(b"bench-redaction-key-0123456789ab")
    with temporary_postgres("at-bench-") as pg:
        tmp = pg.pgdata.parent
        url = pg.create_database("bench")
        upgrade_to_head(url)
        print(f"events: {len(events)} ({size / 1e6:.1f} MB JSON), batches of {BATCH}")
        fixtures = fixture_files()
        if fixtures:
            reset(url)
            fixture_bodies = [p.read_bytes() for p in fixtures]
            elapsed, stored = measure_http(url, fixture_bodies, tmp, 1)
            count = sum(len(b.splitlines()) for b in fixture_bodies)
            print(
                f"real fixtures via POST /ingest (NDJSON, one request per file):"
                f" {count} lines, {stored} stored, in {elapsed:.2f} s"
            )
        reset(url)
        http, stored = measure_http(url, batches(events), tmp, args.senders)
        assert stored == len(events), stored
        reset(url)
        store = asyncio.run(store_path(url, events, redactor))
        reset(url)
        copy = copy_baseline(url, events, redactor)
    rate = len(events)
    print(f"POST /ingest (uvicorn, {args.senders} senders): {rate / http:10.0f} events/s")
    print(f"normalise + INSERT (no HTTP):        {rate / store:10.0f} events/s")
    print(f"COPY of normalised rows (baseline):  {rate / copy:10.0f} events/s")
    print(f"ratio POST /ingest : COPY = 1 : {http / copy:.2f}")
    print(f"ratio store path   : COPY = 1 : {store / copy:.2f}")


if __name__ == "__main__":
    main()
