"""Time the dashboard pages (server time, median of several loads) on fixtures or generated data.

    python bench/page_timings.py --fixtures          # the real fixtures beside the project
    python bench/page_timings.py --events 200000     # app.demo.generate_events(200000)

Starts the embedded PostgreSQL in a temporary directory (or --data-dir to keep it), imports the
data with the real import path, runs `audit-timeline serve` as a subprocess, then loads each
page several times and prints the median and worst wall time per page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from app.db import make_engine, make_sessionmaker
from app.demo import fixture_files, generate_events
from app.embedded_db import start_embedded_postgres
from app.ingest.file_import import import_files
from app.migrate import upgrade_to_head
from app.redaction_key import make_redactor
from app.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded import serve_env, stop_embedded_postgres  # noqa: E402

KEY = "bench-redaction-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def load(url: str, settings: Settings, files: list[Path]) -> int:
    engine = make_engine(url)
    try:
        result = await import_files(
            make_sessionmaker(engine), files, cluster="bench", redactor=make_redactor(settings)
        )
    finally:
        await engine.dispose()
    return result.stored


def timed(http: httpx.Client, path: str, runs: int, headers: dict[str, str]) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = http.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(samples), max(samples)


def pages(http: httpx.Client) -> list[tuple[str, str, dict[str, str]]]:
    """(label, path, headers) of the pages to time, picked from the loaded data."""
    hx = {"HX-Request": "true"}
    items = http.get("/events", params={"include_reads": "false", "limit": 1000}).json()["items"]
    patch = next((i for i in items if i["verb"] in ("patch", "update")), items[0])
    deep = http.get("/events", params={"include_reads": "false", "limit": 1000})
    cursor = deep.json()["next_cursor"]
    namespace = patch["namespace"] or ""
    history = http.get(f"/changes/{patch['id']}").text.split('href="/objects/')[1].split('"')[0]
    result = [
        ("timeline (default: changes)", "/", {}),
        ("timeline, reads included", "/?include_reads=true", {}),
        ("timeline, namespace filter (htmx)", f"/?namespace={namespace}", hx),
        ("timeline, last 24h", "/?window=24h", {}),
        ("timeline, name search", "/?q=web&include_reads=true", {}),
        ("detail: request/response", f"/changes/{patch['id']}", {}),
        ("detail: previous version", f"/changes/{patch['id']}?tab=previous", {}),
        ("detail: raw JSON", f"/changes/{patch['id']}?tab=raw", {}),
        ("object history", f"/objects/{history}", {}),
    ]
    if cursor:
        result.insert(5, ("timeline, page after 1,000 rows (htmx)", f"/?cursor={cursor}", hx))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--fixtures", action="store_true")
    source.add_argument("--events", type=int)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument(
        "--no-vacuum", action="store_true", help="time pages right after the bulk load"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="at-pages-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        settings = Settings(_env_file=None, data_dir=data_dir, redaction_key=KEY)  # type: ignore[call-arg]
        url = start_embedded_postgres(data_dir)
        upgrade_to_head(url)
        if args.fixtures:
            files = fixture_files()
        else:
            sample = Path(tmp) / "generated.jsonl"
            with sample.open("w") as handle:
                for event in generate_events(args.events):
                    handle.write(json.dumps(event) + "\n")
            files = [sample]
        started = time.monotonic()
        stored = asyncio.run(load(url, settings, files))
        print(f"imported {stored:,} events in {time.monotonic() - started:.0f} s")  # noqa: T201
        if not args.no_vacuum:
            # What autovacuum does within a minute or so of a bulk load: statistics, and the
            # visibility map that index-only scans need.
            started = time.monotonic()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) audit_event")
            print(f"VACUUM (ANALYZE) in {time.monotonic() - started:.1f} s")  # noqa: T201
        port = free_port()
        env = serve_env(url, data_dir)
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                for _ in range(300):
                    try:
                        if http.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
                print(f"{'page':45} {'median ms':>10} {'max ms':>8}")  # noqa: T201
                for label, path, headers in pages(http):
                    median, worst = timed(http, path, args.runs, headers)
                    print(f"{label:45} {median:10.1f} {worst:8.1f}")  # noqa: T201
        finally:
            server.terminate()
            server.wait(timeout=30)
            if args.data_dir is None and not getattr(args, "database_url", None):
                stop_embedded_postgres(data_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
