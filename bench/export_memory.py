"""Stream a large CSV export from a real server and report the server's peak memory (RSS).

    python bench/export_memory.py --rows 1000000

Starts the embedded PostgreSQL under a temporary directory (or uses --database-url), copies one
template event N times with INSERT ... SELECT generate_series (fast, no Python per row), runs
`audit-timeline serve` as a subprocess and reads its VmHWM (peak RSS) from /proc before and
after downloading GET /events/export.csv. Linux only. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.audit.intake import RawItem, prepare_batch
from app.audit.queries import insert_events
from app.db import make_engine, make_sessionmaker
from app.embedded_db import start_embedded_postgres
from app.migrate import upgrade_to_head
from app.redaction_key import make_redactor
from app.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from embedded import stop_embedded_postgres  # noqa: E402

from tests.builders import audit_event  # noqa: E402

TEMPLATE = audit_event(auditID="bench-template", verb="patch", level="Metadata")

# Every column except the identity; audit_id, stage_at and (some) usernames vary per copy.
COPY_SQL = """
INSERT INTO audit_event (
    cluster, audit_id, stage, level, verb, request_uri, api_group, api_version, resource,
    subresource, namespace, name, username, user_uid, user_groups, impersonated_user,
    impersonated_groups, source_ips, user_agent, response_code, response_status,
    response_reason, response_message, authz_decision, authz_reason, requested_at, stage_at,
    source, source_meta, request_object, response_object, raw, is_redacted, is_request_row)
SELECT cluster, 'bench-' || g, stage, level, verb, request_uri, api_group, api_version, resource,
    subresource, namespace, name || '-' || (g %% 500),
    CASE WHEN g %% 10 = 0 THEN '=HYPERLINK("http://x","y")' ELSE username END,
    user_uid, user_groups, impersonated_user, impersonated_groups, source_ips, user_agent,
    response_code, response_status, response_reason, response_message, authz_decision,
    authz_reason, requested_at - g * interval '1 second', stage_at - g * interval '1 second',
    source, source_meta, request_object, response_object, raw, is_redacted, true
FROM audit_event t, generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
WHERE t.audit_id = 'bench-template'
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set size so far, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc status")


async def insert_template(
    url: str, settings: Settings, template: dict[str, Any] = TEMPLATE
) -> None:
    """Store the one event that INSERT ... SELECT generate_series then copies."""
    engine = make_engine(url, pool_size=1)
    batch = prepare_batch(
        [RawItem(json.dumps(template).encode(), value=template, origin="bench")],
        cluster="bench",
        source="file",
        redactor=make_redactor(settings),
    )
    async with make_sessionmaker(engine).begin() as session:
        await insert_events(session, batch.events)
    await engine.dispose()


def fill(url: str, rows: int, settings: Settings) -> None:
    with psycopg.connect(url) as conn:
        existing = conn.execute("SELECT count(*) FROM audit_event").fetchone()
    if existing and existing[0] >= rows:
        print(f"database already holds {existing[0]:,} events")  # noqa: T201
        return
    asyncio.run(insert_template(url, settings))
    started = time.monotonic()
    step = 200_000
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(1, rows, step):
            stop = min(start + step - 1, rows - 1)
            conn.execute(COPY_SQL, {"start": start, "stop": stop})
        conn.execute("VACUUM ANALYZE audit_event")
    print(f"inserted {rows:,} events in {time.monotonic() - started:.1f} s")  # noqa: T201


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="use this database instead of an embedded one")
    parser.add_argument("--data-dir", type=Path, help="keep the embedded database here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="at-bench-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            redaction_key="bench-redaction-key-0123456789",
        )
        url = args.database_url or start_embedded_postgres(data_dir)
        upgrade_to_head(url)
        fill(url, args.rows, settings)
        port = free_port()
        env = {
            **os.environ,
            "AUDIT_TIMELINE_DATABASE_URL": url,
            "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
            "AUDIT_TIMELINE_REDACTION_KEY": "bench-redaction-key-0123456789",
            "AUDIT_TIMELINE_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=None) as http:
                for _ in range(200):
                    try:
                        if http.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                http.get("/events/export.csv", params={"limit": 1, "namespace": "none"})
                before = peak_rss_kib(server.pid)
                started = time.monotonic()
                lines = size = 0
                with http.stream("GET", "/events/export.csv") as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                elapsed = time.monotonic() - started
                after = peak_rss_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
            if args.data_dir is None and not getattr(args, "database_url", None):
                stop_embedded_postgres(data_dir)
    print(  # noqa: T201
        f"exported {lines - 1:,} rows ({size / 2**20:.0f} MiB) in {elapsed:.1f} s "
        f"({(lines - 1) / elapsed:,.0f} rows/s); server peak RSS {before / 1024:.0f} MiB "
        f"before, {after / 1024:.0f} MiB after (+{(after - before) / 1024:.0f} MiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
