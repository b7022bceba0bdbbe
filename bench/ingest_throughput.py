"""Ingest throughput and latency: POST /ingest on a real `audit-timeline serve` vs raw COPY.

Run: .venv/bin/python bench/ingest_throughput.py [--json PATH] [--profile DIR]
Starts its own embedded PostgreSQL in a temporary directory and one `audit-timeline serve`
process on it, then, within one run (ratios are only meaningful inside one run):

1. for two mixes, the real mix (the Request/RequestResponse events of ../shared/fixtures/real,
   ~6 kB each) and a Metadata-only mix (the same events without bodies), POSTs batches of 400
   flat out from --senders concurrent senders and COPYs the same normalised rows into the same
   table (audit_event, emptied in between; one COPY and commit per 400 rows, JSON already text),
   --rounds times each, the fastest counting;
   CPU from /proc for the server's process tree and for PostgreSQL's (postmaster and every
   child: backends, WAL writer, checkpointer), so per event and per CPU-second figures;
2. /healthz latency, polled every 20 ms from another process while each mix runs flat out;
3. ack latency of 400-event real-mix batches sent on a fixed schedule (--rate batches/s, open
   loop: a late answer does not delay the next send, and latency counts from the scheduled
   send time) for --ack-seconds, plus the max sustainable batches/s (flat-out real-mix
   events/s / 400).

With --profile DIR, py-spy (requirements-dev.txt) samples the server (all its processes) during
one more (uncounted) flat-out run of each mix: DIR/<mix>.txt (collapsed stacks), and the top
functions printed.
Each event gets a fresh auditID and a recent timestamp; nothing is read back but counts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

import httpx  # noqa: E402
import psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audit.intake import prepare_batch, unwrap_envelope  # noqa: E402
from app.audit.queries import EVENT_COLUMNS, _copy_value  # noqa: E402
from app.audit.redact import Redactor  # noqa: E402
from app.db import LZ4_IF_AVAILABLE  # noqa: E402
from app.demo import fixture_files  # noqa: E402
from app.ingest.decode import split_body  # noqa: E402
from app.migrate import upgrade_to_head  # noqa: E402
from tests.pg import temporary_postgres  # noqa: E402

BATCH = 400
TICK = os.sysconf("SC_CLK_TCK")
COPY_COLUMNS = (*EVENT_COLUMNS, "is_request_row")


# --- data -----------------------------------------------------------------------------------


def fixture_pool() -> list[dict[str, Any]]:
    """The real fixtures' events that carry bodies (level Request or RequestResponse)."""
    pool = []
    for path in fixture_files():
        for line in path.read_bytes().splitlines():
            try:
                value, _ = unwrap_envelope(json.loads(line))
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("level") in ("Request", "RequestResponse"):
                pool.append(value)
    if not pool:
        raise SystemExit("no fixtures: ../shared/fixtures/real must sit beside the project")
    return pool


def metadata_only(event: dict[str, Any]) -> dict[str, Any]:
    stripped = {k: v for k, v in event.items() if k not in ("requestObject", "responseObject")}
    return {**stripped, "level": "Metadata"}


def make_events(pool: list[dict[str, Any]], count: int, *, seed: int) -> list[dict[str, Any]]:
    """count events drawn from pool, each with its own auditID and a time in the last day."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(days=1)
    events = []
    for i in range(count):
        event = json.loads(json.dumps(rng.choice(pool)))
        at = base + timedelta(milliseconds=i * 3 + rng.randrange(3))
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event["auditID"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        event["stageTimestamp"] = stamp
        event["requestReceivedTimestamp"] = (at - timedelta(milliseconds=4)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        event.pop("timestamp", None)
        events.append(event)
    return events


def bodies_of(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
                    "items": events[i : i + BATCH]}).encode()
        for i in range(0, len(events), BATCH)
    ]  # fmt: skip


def copy_rows(bodies: list[bytes], redactor: Redactor) -> list[list[list[Any]]]:
    """The rows our own normaliser makes of each body, JSON columns already text: what a
    COPY needs, prepared before the clock starts."""
    batches = []
    for body in bodies:
        prepared = prepare_batch(
            split_body(body, max_items=10 * BATCH), cluster="bench", source="webhook",
            redactor=redactor,
        )  # fmt: skip
        assert not prepared.quarantined, prepared.quarantined[0].error
        batches.append(
            [[*(_copy_value(c, row[c]) for c in EVENT_COLUMNS), True] for row in prepared.events]
        )
    return batches


# --- processes and CPU ----------------------------------------------------------------------


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of root and all its descendants, live or reaped: each live
    process's own time plus what its reaped children used (cutime/cstime)."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    members = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                changed = True
    return sum(times.get(pid, 0) for pid in members) / TICK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    url: str, data_dir: Path, workers: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": url,
        "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
        "AUDIT_TIMELINE_LOG_LEVEL": "WARNING",
        "AUDIT_TIMELINE_PORT": str(port),
        "AUDIT_TIMELINE_INGEST_RATE_EVENTS": "0",
        "AUDIT_TIMELINE_INGEST_RATE_BYTES": "0",
    }
    if workers is not None:
        env["AUDIT_TIMELINE_WORKERS"] = str(workers)
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not become ready in 60 s")


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE audit_event, quarantined_item")
        conn.execute("VACUUM ANALYZE audit_event")
        conn.execute("CHECKPOINT")


def count_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_event").fetchone()
    return int(row[0]) if row else 0


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
            "max": round(ordered[-1], 2), "n": len(ordered)}  # fmt: skip


# --- measurements ---------------------------------------------------------------------------


# The probe runs in a process of its own: in a thread of the bench it would also time its
# wait for the bench's GIL, held by the senders.
_PROBE = """
import http.client, json, sys, time
host, port = sys.argv[1], int(sys.argv[2])
conn = http.client.HTTPConnection(host, port, timeout=30)
samples, failures = [], 0
try:
    while True:
        started = time.time()
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                samples.append((started, (time.time() - started) * 1000))
            else:
                failures += 1
        except OSError:
            failures += 1
            conn = http.client.HTTPConnection(host, port, timeout=30)
        time.sleep(0.02)
except KeyboardInterrupt:
    print(json.dumps({"samples": samples, "failures": failures}))
"""


class HealthProbe:
    """GET /healthz every 20 ms from another process; latencies (ms) of the requests sent
    while is_counting (between count_from() and count_until())."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROBE, host, port], stdout=subprocess.PIPE
        )
        self.windows: list[tuple[float, float]] = []
        self.latencies: list[float] = []
        self.failures = 0

    def count_from(self) -> None:
        self.windows.append((time.time(), float("inf")))

    def count_until(self) -> None:
        self.windows[-1] = (self.windows[-1][0], time.time())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=30)
        found = json.loads(out)
        self.failures = found["failures"]
        self.latencies = [
            ms
            for at, ms in found["samples"]
            if any(start <= at <= end for start, end in self.windows)
        ]


async def post_flat_out(base: str, bodies: list[bytes], senders: int) -> int:
    queue = collections.deque(bodies)
    stored = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal stored
        while queue:
            body = queue.popleft()
            response = await client.post(
                "/ingest", content=body, params={"cluster": "bench"},
                headers={"content-type": "application/json"},
            )  # fmt: skip
            response.raise_for_status()
            stored += response.json()["stored"]

    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        await asyncio.gather(*(sender(client) for _ in range(senders)))
    return stored


async def post_on_schedule(
    base: str, bodies: list[bytes], rate: float
) -> tuple[list[float], collections.Counter[str]]:
    """Send bodies at rate a second (open loop); ms from each scheduled send to its answer
    (successful ones), and the failures by status code or error class."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()

    async def send(client: httpx.AsyncClient, body: bytes, due: float) -> None:
        try:
            response = await client.post(
                "/ingest", content=body, params={"cluster": "bench"},
                headers={"content-type": "application/json"},
            )  # fmt: skip
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
            return
        if response.status_code != 200:
            errors[str(response.status_code)] += 1
            return
        latencies.append((time.perf_counter() - due) * 1000)

    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        tasks = []
        start = time.perf_counter() + 0.1
        for i, body in enumerate(bodies):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(send(client, body, due)))
        await asyncio.gather(*tasks)
    return latencies, errors


def copy_flat_out(
    url: str, batches: list[list[list[Any]]], *, compression: str | None = None
) -> float:
    columns = ", ".join(COPY_COLUMNS)
    with psycopg.connect(url) as conn:
        if compression is None:  # what the app's sessions use (app/db.py)
            conn.execute(LZ4_IF_AVAILABLE)
        else:
            conn.execute("SELECT set_config('default_toast_compression', %s, false)", [compression])
        conn.commit()
        started = time.perf_counter()
        for rows in batches:
            with conn.cursor() as cur, cur.copy(f"COPY audit_event ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        return time.perf_counter() - started


class Profiler:
    """py-spy record over the server's processes, collapsed stacks to path."""

    def __init__(self, pid: int, path: Path) -> None:
        self.path = path
        pyspy = Path(sys.executable).with_name("py-spy")
        self.process = subprocess.Popen(
            [str(pyspy), "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
             "--rate", "200", "--output", str(path), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.0)  # let it attach

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)


def summarise_profile(path: Path, top: int = 10) -> dict[str, Any]:
    """Top functions by self time (leaf frame), and our own (app/) functions by total time
    (anywhere in the stack), as % of the samples that were not waiting."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        samples += count
        if not frames:
            continue
        leaf = frames[-1]
        if any(word in leaf for word in ("select (selectors", "_run_once", "wait (threading",
                                         "epoll", "poll (selectors")):  # fmt: skip
            idle += count
            continue
        own[leaf] += count
        for frame in {f for f in frames if "(app/" in f and "(app/cli.py" not in f}:
            total[frame] += count
    busy = max(1, samples - idle)
    return {
        "samples": samples,
        "idle_samples": idle,
        "self": [(f, round(100 * c / busy, 1)) for f, c in own.most_common(top)],
        "total": [(f, round(100 * c / busy, 1)) for f, c in total.most_common(top)],
    }


def measure_mix(
    name: str, events: list[dict[str, Any]], *, url: str, base: str, server_pid: int,
    pg_pid: int, senders: int, rounds: int, redactor: Redactor, profile_dir: Path | None,
) -> dict[str, Any]:  # fmt: skip
    """rounds x (POST flat out, then COPY of the same rows): the fastest of each counts for
    events/s (a shared machine only ever slows a run down); CPU is summed over all rounds.
    With profile_dir, one more POST run under py-spy, not counted."""
    bodies = bodies_of(events)
    rows = copy_rows(bodies, redactor)
    n = len(events)
    post_times, copy_times = [], []
    server_cpu = pg_post_cpu = pg_copy_cpu = 0.0
    probe = HealthProbe(base)
    for _ in range(rounds):
        reset(url)
        server0, pg0, started = tree_cpu(server_pid), tree_cpu(pg_pid), time.perf_counter()
        probe.count_from()
        stored = asyncio.run(post_flat_out(base, bodies, senders))
        probe.count_until()
        post_times.append(time.perf_counter() - started)
        server_cpu += tree_cpu(server_pid) - server0
        pg_post_cpu += tree_cpu(pg_pid) - pg0
        assert stored == n == count_events(url), (stored, n)
        reset(url)
        pg0 = tree_cpu(pg_pid)
        copy_times.append(copy_flat_out(url, rows))
        time.sleep(0.5)  # the COPY's backend has exited: let the postmaster reap it (cutime)
        pg_copy_cpu += tree_cpu(pg_pid) - pg0
        assert count_events(url) == n
    probe.stop()
    total = n * rounds
    post_cpu = server_cpu + pg_post_cpu
    result = {
        "events": n,
        "rounds": rounds,
        "bytes_per_event": round(sum(len(b) for b in bodies) / n),
        "post_eps": round(n / min(post_times)),
        "copy_eps": round(n / min(copy_times)),
        "ratio": round(min(copy_times) / min(post_times), 3),
        "post_seconds": [round(t, 2) for t in post_times],
        "copy_seconds": [round(t, 2) for t in copy_times],
        "server_cpu_us_per_event": round(1e6 * server_cpu / total, 1),
        "postgres_cpu_us_per_event_post": round(1e6 * pg_post_cpu / total, 1),
        "postgres_cpu_us_per_event_copy": round(1e6 * pg_copy_cpu / total, 1),
        "server_cores_busy": round(server_cpu / sum(post_times), 2),
        "events_per_server_cpu_second": round(total / max(1e-9, server_cpu)),
        "events_per_cpu_second": round(total / max(1e-9, post_cpu)),
        "copy_events_per_postgres_cpu_second": round(total / max(1e-9, pg_copy_cpu)),
        # Ours against COPY per CPU-second (server + PostgreSQL vs PostgreSQL alone).
        "cpu_ratio": round(pg_copy_cpu / max(1e-9, post_cpu), 3),
        "healthz_ms": {**percentiles(probe.latencies), "failures": probe.failures},
    }
    if profile_dir:
        reset(url)
        profiler = Profiler(server_pid, profile_dir / f"{name}.txt")
        asyncio.run(post_flat_out(base, bodies, senders))
        profiler.stop()
        result["profile"] = summarise_profile(profiler.path)
    return result


@contextlib.contextmanager
def database(external: str | None) -> Iterator[tuple[str, int, Path]]:
    """(URL of a fresh migrated database, postmaster pid, a scratch folder): on a temporary
    embedded PostgreSQL, or on the server of external (needs CREATE DATABASE, and /proc access
    to its processes for CPU figures)."""
    if external is None:
        with temporary_postgres("at-bench-") as pg:
            url = pg.create_database("bench")
            upgrade_to_head(url)
            yield url, int((pg.pgdata / "postmaster.pid").read_text().split()[0]), pg.pgdata.parent
        return
    with psycopg.connect(external, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS ingest_bench")
        conn.execute("CREATE DATABASE ingest_bench")
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    pid = int((Path(row[0]) / "postmaster.pid").read_text().split()[0])
    url = external_url(external)
    upgrade_to_head(url)
    with tempfile.TemporaryDirectory(prefix="at-bench-") as scratch:
        yield url, pid, Path(scratch)


def external_url(external: str) -> str:
    """external with its database replaced by ingest_bench (a postgresql:// URL)."""
    parts = urllib.parse.urlsplit(external)
    return urllib.parse.urlunsplit(parts._replace(path="/ingest_bench"))


def table_bytes(url: str) -> tuple[int, int]:
    """Bytes of audit_event (and its partitions, if any): in all, and in TOAST alone."""
    with psycopg.connect(url) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)),"
            " sum(coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0))"
            " FROM pg_class c WHERE c.oid = 'audit_event'::regclass OR c.oid IN"
            " (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_event'::regclass)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def compare_compression(url: str, rows: list[list[list[Any]]], rounds: int) -> dict[str, Any]:
    """COPY the same rows with pglz and with lz4 TOAST compression (where the server has it):
    best seconds, table bytes."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
        ).fetchone()
    methods = list(row[0]) if row else ["pglz"]
    result: dict[str, Any] = {"available": methods}
    for method in methods:
        times = []
        for _ in range(rounds):
            reset(url)
            times.append(copy_flat_out(url, rows, compression=method))
        total, toast = table_bytes(url)
        result[method] = {
            "copy_seconds": round(min(times), 3),
            "bytes": total,
            "toast_bytes": toast,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real-events", type=int, default=12_000)
    parser.add_argument("--metadata-events", type=int, default=40_000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="POST and COPY runs per mix")
    parser.add_argument("--rate", type=float, default=10.0, help="batches/s for the ack run")
    parser.add_argument("--ack-seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, help="AUDIT_TIMELINE_WORKERS for the server")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--profile", type=Path, help="py-spy the server; stacks in this dir")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use instead of a temporary embedded one (its database"
        " ingest_bench is dropped and made again)",
    )
    parser.add_argument(
        "--compare-compression",
        action="store_true",
        help="also COPY the real mix with each TOAST compression the server has (pglz, lz4)",
    )
    args = parser.parse_args()
    pool = fixture_pool()
    real = make_events(pool, args.real_events, seed=11)
    metadata = [metadata_only(e) for e in make_events(pool, args.metadata_events, seed=12)]
    ack_events = make_events(pool, round(args.rate * args.ack_seconds) * BATCH, seed=13)
    redactor = Redactor(b"bench-redaction-key-0123456789ab")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "loadavg_before": load_before}}
    with database(args.database_url) as (url, pg_pid, scratch):
        if args.compare_compression:
            rows = copy_rows(bodies_of(real), redactor)
            report["toast_compression"] = compare_compression(url, rows, args.rounds)
        server, base = start_server(url, scratch, args.workers)
        try:
            report["server_processes"] = sum(
                1 for pid in os.listdir("/proc")
                if pid.isdigit() and _is_descendant(int(pid), server.pid)
            )  # fmt: skip
            mixes = {}
            for name, events in (("real", real), ("metadata", metadata)):
                mixes[name] = measure_mix(
                    name, events, url=url, base=base, server_pid=server.pid, pg_pid=pg_pid,
                    senders=args.senders, rounds=args.rounds, redactor=redactor,
                    profile_dir=args.profile,
                )  # fmt: skip
            report["mixes"] = mixes
            reset(url)
            latencies, errors = asyncio.run(
                post_on_schedule(base, bodies_of(ack_events), args.rate)
            )
            report["ack_ms"] = {**percentiles(latencies), "errors": dict(errors),
                                "rate_batches_per_s": args.rate}  # fmt: skip
            report["max_sustainable_batches_per_s"] = round(mixes["real"]["post_eps"] / BATCH, 1)
            report["healthz_ms"] = mixes["real"]["healthz_ms"]
        finally:
            server.terminate()
            server.wait(30)
    report["machine"]["loadavg_after"] = os.getloadavg()
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def _is_descendant(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rpartition(")")[2].split()[1])
    return False


def print_report(report: dict[str, Any]) -> None:
    machine = report["machine"]
    if "toast_compression" in report:
        print(f"TOAST compression (COPY of the real mix): {report['toast_compression']}")
    print(f"machine: {machine['cpus']} CPUs, load {machine['loadavg_before'][0]:.2f} before,"
          f" {machine['loadavg_after'][0]:.2f} after; server processes:"
          f" {report['server_processes']}")  # fmt: skip
    for name, mix in report["mixes"].items():
        print(f"\n{name} mix: {mix['events']} events, {mix['bytes_per_event']} B/event")
        print(f"  POST /ingest        {mix['post_eps']:8d} events/s")
        print(f"  COPY (same rows)    {mix['copy_eps']:8d} events/s")
        print(f"  ratio POST : COPY   {mix['ratio']:8.2f}"
              f"   (per CPU-second {mix['cpu_ratio']:.2f})")  # fmt: skip
        print(f"  CPU per event: server {mix['server_cpu_us_per_event']} us"
              f" ({mix['server_cores_busy']} cores busy), PostgreSQL"
              f" {mix['postgres_cpu_us_per_event_post']} us (COPY:"
              f" {mix['postgres_cpu_us_per_event_copy']} us)")  # fmt: skip
        print(
            f"  events per CPU-second: {mix['events_per_cpu_second']} (server + PostgreSQL),"
            f" {mix['events_per_server_cpu_second']} (server alone)"
        )
        print(f"  /healthz during flat-out ingest: {mix['healthz_ms']}")
        for kind in ("self", "total"):
            if "profile" in mix:
                what = "self time" if kind == "self" else "total time, app/ only"
                print(f"  py-spy top by {what} (% of busy samples):")
                for frame, share in mix["profile"][kind]:
                    print(f"    {share:5.1f}  {frame}")
    ack = report["ack_ms"]
    print(f"\nack latency, {BATCH}-event real batches at {ack['rate_batches_per_s']}/s: "
          f"p50 {ack.get('p50')} ms, p95 {ack.get('p95')} ms, p99 {ack.get('p99')} ms,"
          f" max {ack.get('max')} ms, errors {ack['errors']}")  # fmt: skip
    print(
        f"max sustainable (flat-out real mix / {BATCH}):"
        f" {report['max_sustainable_batches_per_s']} batches/s"
    )


if __name__ == "__main__":
    main()
