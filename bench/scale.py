"""Timeline at production scale: fill N events by SQL, then time every page and query over HTTP.

    .venv/bin/python bench/scale.py                          # 10,000,000 events (~20-30 min fill)
    .venv/bin/python bench/scale.py --events 200000          # light mode, a few minutes
    .venv/bin/python bench/scale.py --reuse ~/.cache/at-scale --json out.json --elasticsearch

Fill: the embedded PostgreSQL under a temporary directory (or --reuse DIR/<key>, key = N, the
Alembic head(s) and the generator version, so reruns skip the fill), the app's own migrations,
then chunked INSERT ... SELECT generate_series through the parent table audit_event (every
index, trigger and rollup maintained as the app maintains them; weekly partitions ensured first
when the schema has them), VACUUM (ANALYZE) at the end as autovacuum would. Distributions:
bench/scale_data.py. Timings: `audit-timeline serve` in a subprocess, every query warmed once
then timed --runs times (--slow-runs when the warm-up took longer than --slow-ms), p50/p95/max
of the HTTP round trip; CSV and NDJSON export of >= --export-rows rows; the server's RSS sampled
from /proc all along. --elasticsearch loads the same events (or the newest --es-events of them)
into a test Elasticsearch 7.17 (tests/es_server.py) and times the equivalent searches.
Prints one table; --json PATH writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

import httpx  # noqa: E402
import psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import scale_data  # noqa: E402
from embedded import serve_env  # noqa: E402

from app.embedded_db import start_embedded_postgres, stop_embedded_postgres  # noqa: E402
from app.migrate import alembic_config, upgrade_to_head  # noqa: E402

KUBE_SYSTEM_SAS = "system:serviceaccount:kube-system:*"
GOAL_P95_MS = 50.0  # issue 9: every page and query p95 < 50 ms at 10M events
CHANGE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- fill -----------------------------------------------------------------------------------


def schema_heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return sorted(ScriptDirectory.from_config(alembic_config("postgresql://x")).get_heads())


def fill_key(events: int) -> str:
    return f"n{events}-{'+'.join(schema_heads())}-g{scale_data.GENERATOR_VERSION}"


def ensure_partitions(url: str, *, since: datetime, until: datetime) -> str:
    """Create the weekly partitions for the fill's range with the app's own function, when the
    schema is partitioned (app/audit/partitions.py); say what was done."""
    try:
        from app.audit import partitions
    except ImportError:
        return "absent (unpartitioned schema)"
    from app.db import make_engine

    async def run() -> None:
        engine = make_engine(url)
        try:
            if hasattr(partitions, "ensure_weeks"):
                await partitions.ensure_weeks(engine, partitions.weeks_between(since, until))
            else:
                async with engine.begin() as conn:
                    await partitions.ensure_partitions(conn, since=since, until=until)
        finally:
            await engine.dispose()

    asyncio.run(run())
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_event'::regclass"
        ).fetchone()
    return f"{row[0] if row else 0} partitions after ensuring {since:%Y-%m-%d}..{until:%Y-%m-%d}"


def fill(url: str, events: int, *, chunk: int, jobs: int) -> dict[str, Any]:
    """Fill audit_event with `events` rows ending now; return the fill's figures."""
    end = datetime.now(UTC).replace(microsecond=0)
    since = end - scale_data.SPAN - timedelta(days=1)
    partitioned = ensure_partitions(url, since=since, until=end + timedelta(days=1))
    log(f"partitions: {partitioned}")
    with psycopg.connect(url, autocommit=True) as conn:
        # WAL: fewer checkpoints (and full-page images) during the load; this data directory
        # is the bench's own. Does not change what is stored or how it is indexed.
        conn.execute("ALTER SYSTEM SET max_wal_size = '4GB'")
        conn.execute("ALTER SYSTEM SET checkpoint_timeout = '30min'")
        conn.execute("SELECT pg_reload_conf()")
        existing = conn.execute("SELECT count(*) FROM audit_event").fetchone()
        if existing and existing[0]:
            raise SystemExit(f"audit_event already holds {existing[0]} rows; refusing to fill")
    # A multiple of 6 rows: both stages of a request are stored by one statement.
    chunk = max(6, chunk - chunk % 6)
    ranges = [(start, min(start + chunk - 1, events)) for start in range(1, events + 1, chunk)]
    done = 0
    lock = threading.Lock()
    started = time.monotonic()
    log(f"fill: {events:,} events in {len(ranges)} chunks, {jobs} connection(s),"
        f" load {load_average()}")  # fmt: skip
    local = threading.local()

    def connection() -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
        if conn is None:
            conn = psycopg.connect(url, autocommit=True)
            conn.execute("SET synchronous_commit = off")
            conn.execute("SET maintenance_work_mem = '256MB'")
            conn.execute("SET work_mem = '64MB'")
            scale_data.create_catalogs(conn)
            local.conn = conn
            opened.append(conn)
        return conn

    opened: list[psycopg.Connection[Any]] = []

    def run(bounds: tuple[int, int]) -> None:
        nonlocal done
        start, stop = bounds
        scale_data.fill_range(
            connection(), start=start, stop=stop, events=events, end=end, seed="scale"
        )
        with lock:
            done += stop - start + 1
            elapsed = time.monotonic() - started
            rate = done / elapsed
            log(f"fill: {done:>11,} / {events:,} rows  {rate:8,.0f} rows/s"
                f"  eta {(events - done) / rate / 60:5.1f} min  load {load_average()}")  # fmt: skip

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            # Chunks are handed out in time order, so rows land roughly in time order.
            list(pool.map(run, ranges))
    finally:
        for conn in opened:
            conn.close()
    insert_s = time.monotonic() - started
    log(f"fill: inserted in {insert_s / 60:.1f} min; VACUUM (ANALYZE) ...")
    began = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("VACUUM (ANALYZE)")
    vacuum_s = time.monotonic() - began
    log(f"fill: VACUUM (ANALYZE) in {vacuum_s:.0f} s")
    return {
        "events": events,
        "filled_at": end.isoformat(),
        "fill_s": round(insert_s + vacuum_s, 1),
        "fill_insert_s": round(insert_s, 1),
        "fill_vacuum_s": round(vacuum_s, 1),
        "fill_rows_per_s": round(events / insert_s),
        "fill_jobs": jobs,
        "fill_chunk_rows": chunk,
        "fill_load_average": load_average(),
        "partitioned": partitioned,
    }


@contextmanager
def database(args: argparse.Namespace) -> Iterator[tuple[str, Path, dict[str, Any]]]:
    """The filled database: (url, data dir, fill figures), reused when --reuse holds it."""
    key = fill_key(args.events)
    with tempfile.TemporaryDirectory(prefix="at-scale-") as tmp:
        data_dir = (args.reuse / key) if args.reuse else Path(tmp)
        record = data_dir / "fill.json"
        if args.reuse and data_dir.exists() and not record.exists():
            log(f"{data_dir} holds an unfinished fill: removing it")
            shutil.rmtree(data_dir)
        url = start_embedded_postgres(data_dir)
        try:
            if record.exists():
                figures = json.loads(record.read_text())
                log(f"reusing {data_dir} ({key}, filled {figures['filled_at']})")
            else:
                upgrade_to_head(url)
                figures = fill(url, args.events, chunk=args.chunk, jobs=args.jobs)
                figures["key"] = key
                record.write_text(json.dumps(figures, indent=2))
            yield url, data_dir, figures
        finally:
            stop_embedded_postgres(data_dir)


# --- the server and its memory --------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (serve's worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue.extend(children.get(current, []))
    return tree


def status_kib(pid: int, field: str, name: str = "status") -> int:
    try:
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Samples the VmRSS of a process and its descendants (serve's workers) from /proc every
    `interval` s; keeps the maximum of the sum, and of any one process."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.max_kib = 0
        self.max_one_kib = 0
        self.max_pss_kib = 0
        self.processes = 0
        self.samples = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set() and Path(f"/proc/{self.pid}").exists():
            sizes = [status_kib(pid, "VmRSS:") for pid in process_tree(self.pid)]
            self.max_kib = max(self.max_kib, sum(sizes))
            # PSS shares each shared page among its users: the sum is the tree's real footprint.
            pss = sum(status_kib(pid, "Pss:", "smaps_rollup") for pid in process_tree(self.pid))
            self.max_pss_kib = max(self.max_pss_kib, pss)
            self.max_one_kib = max(self.max_one_kib, max(sizes, default=0))
            self.processes = max(self.processes, len(sizes))
            self.samples += 1
            self.stopping.wait(self.interval)

    def peak_hwm_kib(self) -> int:
        """Sum of each live process's own peak (VmHWM)."""
        return sum(status_kib(pid, "VmHWM:") for pid in process_tree(self.pid))


@contextmanager
def server(url: str, data_dir: Path) -> Iterator[tuple[httpx.Client, RssSampler]]:
    port = free_port()
    env = serve_env(url, data_dir)
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    sampler = RssSampler(proc.pid)
    sampler.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as http:
            for _ in range(1200):
                if proc.poll() is not None:
                    raise SystemExit(f"audit-timeline serve exited with {proc.returncode}")
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            yield http, sampler
    finally:
        sampler.stopping.set()
        proc.terminate()
        proc.wait(timeout=60)


# --- timing ---------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    es: Timing | None = None

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        return {
            "p50_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(p95, 1),
            "max_ms": round(ordered[-1], 1),
            "runs": len(ordered),
            **({"note": self.note} if self.note else {}),
        }


class Timer:
    def __init__(self, http: httpx.Client, args: argparse.Namespace) -> None:
        self.http = http
        self.args = args
        self.results: dict[str, Timing] = {}

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = self.http.get(path, headers=headers or {})
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
        return elapsed, response

    def time(self, name: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """Warm once, then time; fewer runs for a query that takes seconds (noted)."""
        warm, response = self.get(path, headers)
        runs = self.args.runs if warm < self.args.slow_ms else self.args.slow_runs
        timing = Timing(name, note="" if runs == self.args.runs else f"{runs} runs (slow)")
        for _ in range(runs):
            timing.samples.append(self.get(path, headers)[0])
        self.results[name] = timing
        figures = timing.figures()
        log(f"{name:58} p50 {figures['p50_ms']:9.1f}  p95 {figures['p95_ms']:9.1f}"
            f"  max {figures['max_ms']:9.1f} ms  ({runs} runs)")  # fmt: skip
        return response


_LAZY_RE = re.compile(
    r"<[^>]*\bhx-get=\"([^\"]+)\"[^>]*\bhx-trigger=\"[^\"]*\bload\b[^\"]*\"[^>]*>"
)
_LAZY_RE_2 = re.compile(
    r"<[^>]*\bhx-trigger=\"[^\"]*\bload\b[^\"]*\"[^>]*\bhx-get=\"([^\"]+)\"[^>]*>"
)


def lazy_parts(html: str) -> list[str]:
    """URLs a page loads by itself after painting (hx-trigger="load ..."), e.g. a histogram."""
    found = _LAZY_RE.findall(html) + _LAZY_RE_2.findall(html)
    return list(dict.fromkeys(u.replace("&amp;", "&") for u in found))


@dataclass(frozen=True)
class Picks:
    """Values picked from the filled data for the filters."""

    namespace: str
    team_namespace: str
    resource: str
    user: str
    team_user: str
    group: str
    cluster: str
    name: str
    detail_id: int
    busiest_id: int
    export_since: datetime
    export_rows: int


def pick(url: str, export_rows: int) -> Picks:
    with psycopg.connect(url) as conn:

        def one(sql: str, params: Any = None) -> Any:
            row = conn.execute(sql, params).fetchone()
            if row is None:
                raise SystemExit(f"no row for: {sql}")
            return row[0]

        busy = scale_data.BUSIEST
        busiest_id = one(
            "SELECT id FROM audit_event WHERE cluster = %s AND resource = %s AND namespace = %s"
            " AND name = %s AND verb = 'update' ORDER BY stage_at DESC LIMIT 1",
            (busy["cluster"], busy["resource"], busy["namespace"], busy["name"]),
        )
        # A change with bodies whose object was recorded with a body before: the detail's
        # previous version has something to show.
        # (A small fill may have none: then the newest change with a body, or any change.)
        detail = conn.execute(
            "SELECT r.id FROM audit_event r WHERE r.stage_at > now() - interval '3 days'"
            " AND r.verb IN ('update', 'patch') AND r.resource = 'deployments'"
            " AND r.subresource IS NULL AND r.response_object IS NOT NULL AND r.is_request_row"
            " AND EXISTS (SELECT 1 FROM audit_event e WHERE e.cluster = r.cluster"
            "   AND e.resource = r.resource AND e.namespace = r.namespace AND e.name = r.name"
            "   AND e.stage_at < r.stage_at AND e.response_object IS NOT NULL)"
            " ORDER BY r.stage_at DESC LIMIT 1"
        ).fetchone()
        detail_id = (
            detail[0]
            if detail
            else one(
                "SELECT id FROM audit_event WHERE verb IN ('update', 'patch') AND is_request_row"
                " ORDER BY response_object IS NOT NULL DESC, stage_at DESC LIMIT 1"
            )
        )
        total = one("SELECT count(*) FROM audit_event")
        offset = min(export_rows, total) - 1
        since = one("SELECT stage_at FROM audit_event ORDER BY stage_at DESC OFFSET %s LIMIT 1",
                    (offset,))  # fmt: skip
        rows = one("SELECT count(*) FROM audit_event WHERE stage_at >= %s", (since,))
    return Picks(
        namespace="kube-system",
        team_namespace="payments-prod",
        resource="configmaps",
        user="system:serviceaccount:kube-system:deployment-controller",
        team_user="system:serviceaccount:payments-prod:deployer",
        group="system:masters",
        cluster="staging",
        name="coredns",
        detail_id=int(detail_id),
        busiest_id=int(busiest_id),
        export_since=since,
        export_rows=int(rows),
    )


def filters(p: Picks) -> list[tuple[str, dict[str, Any]]]:
    """(label, query parameters): the issue's list of single filters, ranges and combinations."""
    return [
        ("default (changes, all time)", {}),
        ("with reads, all time", {"include_reads": "true"}),
        ("last 7 days", {"window": "7d"}),
        ("last 24 hours", {"window": "24h"}),
        ("with reads, last 24 hours", {"include_reads": "true", "window": "24h"}),
        (f"namespace={p.namespace}", {"namespace": p.namespace}),
        (f"namespace={p.team_namespace}", {"namespace": p.team_namespace}),
        (f"resource={p.resource}", {"resource": p.resource}),
        ("user=<kube-system controller>", {"user": p.user}),
        ("user=system:serviceaccount:kube-system:*", {"user": KUBE_SYSTEM_SAS}),
        (f"group={p.group}", {"group": p.group}),
        ("verb=delete", {"verb": "delete"}),
        (f"cluster={p.cluster}", {"cluster": p.cluster}),
        (f"name~{p.name}", {"q": p.name}),
        ("status=failure", {"status": "failure"}),
        ("namespace+verb+resource", {"namespace": p.team_namespace, "verb": "patch",
                                     "resource": "deployments"}),
        ("user+namespace", {"user": p.team_user, "namespace": p.team_namespace}),
        ("namespace+7d", {"namespace": p.namespace, "window": "7d"}),
        ("reads: namespace+resource, 24h", {"include_reads": "true", "namespace": p.namespace,
                                            "resource": "pods", "window": "24h"}),
    ]  # fmt: skip


def path(base: str, params: dict[str, Any]) -> str:
    return base + ("?" + urlencode(params, doseq=True) if params else "")


def run_queries(timer: Timer, p: Picks) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for label, params in filters(p):
        page = timer.time(f"UI / {label}", path("/", params))
        for part in lazy_parts(page.text):
            stem = part.split("?")[0]
            timer.time(f"UI / {label} · lazy {stem}", part, {"HX-Request": "true"})
    for label, params in filters(p):
        api = {"include_reads": "false", "per": "request"}
        api.update(params)
        timer.time(f"API events {label}", path("/api/v1/events", api))
    for label, params in filters(p):
        api = {"include_reads": "false", "per": "request"}
        api.update(params)
        timer.time(f"API facets {label}", path("/api/v1/events/facets", api))
    timer.time("UI event detail (request/response)", f"/changes/{p.detail_id}")
    timer.time("UI event detail, previous version", f"/changes/{p.detail_id}?tab=previous")
    detail = timer.time("API event detail (with previous)", f"/api/v1/events/{p.detail_id}")
    change = (detail.json().get("change") or {}) if detail else {}
    extra["detail_event"] = {"id": p.detail_id, "previous": change.get("previous_event_id")}
    page = timer.get(f"/changes/{p.busiest_id}")[1].text
    found = re.search(r'href="(/objects/[^"?#]+)"', page)
    if found:
        obj = found.group(1)
        extra["busiest_object"] = obj
        timer.time("UI busiest object's history", obj)
        timer.time("UI busiest object's history, reads shown", obj + "?reads=show")
    # Page 1,000 by cursor: walk the chain once (API, 50 per page), then time page 1,000.
    for label, params in (
        ("changes (dashboard)", {"include_reads": "false", "per": "request"}),
        ("every stage-event (API default)", {}),
    ):
        cursor = None
        walked = time.monotonic()
        for _ in range(999):
            query = {**params, "limit": 50, **({"cursor": cursor} if cursor else {})}
            cursor = timer.get(path("/api/v1/events", query))[1].json()["next_cursor"]
            if cursor is None:
                break
        extra[f"cursor_walk_s {label}"] = round(time.monotonic() - walked, 1)
        if cursor is None:
            log(f"page 1,000 of {label}: fewer than 1,000 pages")
            continue
        timer.time(f"API page 1,000 by cursor, {label}",
                   path("/api/v1/events", {**params, "limit": 50, "cursor": cursor}))  # fmt: skip
        if params:
            timer.time("UI page 1,000 by cursor (htmx rows)", path("/", {"cursor": cursor}),
                       {"HX-Request": "true"})  # fmt: skip
    return extra


def time_export(http: httpx.Client, p: Picks, kind: str) -> dict[str, Any]:
    query = urlencode({"since": p.export_since.isoformat()})
    started = time.perf_counter()
    size = lines = 0
    with http.stream("GET", f"/api/v1/events/export.{kind}?{query}") as response:
        if response.status_code != 200:
            raise SystemExit(f"export.{kind}: {response.status_code}")
        for chunk in response.iter_bytes(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    figures = {
        "rows": p.export_rows,
        "lines": lines,
        "bytes": size,
        "seconds": round(seconds, 1),
        "rows_per_s": round(p.export_rows / seconds),
    }
    log(f"export.{kind}: {p.export_rows:,} rows, {size / 2**20:,.0f} MiB in {seconds:.1f} s"
        f" = {figures['rows_per_s']:,} rows/s")  # fmt: skip
    return figures


def storage(url: str, events: int) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        # pg_partition_tree is empty for an unpartitioned table.
        event_bytes = conn.execute(
            "SELECT greatest(pg_total_relation_size('audit_event'), (SELECT"
            " coalesce(sum(pg_total_relation_size(relid)), 0)"
            " FROM pg_partition_tree('audit_event')))"
        ).fetchone()
        others = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'm')"
            " AND c.relispartition IS FALSE AND c.relname <> 'audit_event'"
            " AND c.relname NOT IN ('alembic_version', 'quarantined_item', 'file_checkpoint',"
            " 'poll_checkpoint')"
        ).fetchall()
        default = conn.execute(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit_event'::regclass AND c.relname = 'audit_event_default'"
        ).fetchone()
        in_default = (
            conn.execute("SELECT count(*) FROM audit_event_default").fetchone()
            if default and default[0]
            else None
        )
    audit = int(event_bytes[0]) if event_bytes else 0
    summaries = {name: int(size) for name, size in others}
    total = audit + sum(summaries.values())
    return {
        "audit_event_bytes": audit,
        "summary_table_bytes": summaries,
        "bytes_per_event": round(total / events),
        "audit_event_bytes_per_event": round(audit / events),
        "rows_in_default_partition": in_default[0] if in_default else None,
    }


# --- Elasticsearch --------------------------------------------------------------------------

ES_INDEX = "scale-audit"
ES_MAPPING = {
    "dynamic": False,
    "properties": {
        "cluster": {"type": "keyword"},
        "is_request_row": {"type": "boolean"},
        "auditID": {"type": "keyword"},
        "stage": {"type": "keyword"},
        "verb": {"type": "keyword"},
        "level": {"type": "keyword"},
        "requestURI": {"type": "keyword", "ignore_above": 1024},
        "userAgent": {"type": "keyword", "ignore_above": 512},
        "sourceIPs": {"type": "keyword"},
        "stageTimestamp": {"type": "date"},
        "requestReceivedTimestamp": {"type": "date"},
        "user": {"properties": {"username": {"type": "keyword"}, "groups": {"type": "keyword"}}},
        "impersonatedUser": {
            "properties": {"username": {"type": "keyword"}, "groups": {"type": "keyword"}}
        },
        "objectRef": {
            "properties": {
                key: {"type": "keyword"}
                for key in ("resource", "subresource", "namespace", "name", "apiGroup")
            }
        },
        "responseStatus": {"properties": {"code": {"type": "integer"}}},
    },
}


async def es_load(es_url: str, pg_url: str, count: int) -> dict[str, Any]:
    """Bulk-load the newest `count` events (raw + bodies, as Calico's index holds them)."""
    from elasticsearch import AsyncElasticsearch
    from elasticsearch.helpers import async_streaming_bulk

    from app.poller.compat import CompatTransport

    client = AsyncElasticsearch(
        es_url, node_class="httpxasync", transport_class=CompatTransport, request_timeout=300
    )
    assert isinstance(client.transport, CompatTransport)
    client.transport.server_major = 7
    await client.options(ignore_status=404).indices.delete(index=ES_INDEX)
    await client.indices.create(
        index=ES_INDEX,
        mappings=ES_MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1"},
    )

    async def docs() -> Any:
        conn = await psycopg.AsyncConnection.connect(pg_url)
        async with conn, conn.cursor(name="es_load") as cur:
            await cur.execute(
                "SELECT id, cluster, is_request_row, raw, request_object, response_object"
                " FROM audit_event ORDER BY stage_at DESC LIMIT %s",
                (count,),
            )
            async for row_id, cluster, request_row, raw, req, resp in cur:
                doc = dict(raw, cluster=cluster, is_request_row=request_row)
                if req is not None:
                    doc["requestObject"] = req
                if resp is not None:
                    doc["responseObject"] = resp
                yield {"_index": ES_INDEX, "_id": str(row_id), "_source": doc}

    started = time.monotonic()
    loaded = 0
    async for ok, _item in async_streaming_bulk(client, docs(), chunk_size=2000):
        loaded += ok
        if loaded % 200_000 == 0:
            log(f"elasticsearch: {loaded:,} / {count:,} docs loaded")
    await client.indices.refresh(index=ES_INDEX)
    await client.indices.forcemerge(index=ES_INDEX, max_num_segments=5)
    stats = await client.indices.stats(index=ES_INDEX)
    await client.close()
    seconds = time.monotonic() - started
    size = stats["indices"][ES_INDEX]["primaries"]["store"]["size_in_bytes"]
    return {
        "docs": loaded,
        "load_s": round(seconds, 1),
        "docs_per_s": round(loaded / seconds),
        "bytes_per_doc": round(size / max(loaded, 1)),
    }


def es_queries(p: Picks) -> list[tuple[str, str, dict[str, Any]]]:
    """(timing name it pairs with, description, search body) for the equivalent searches."""
    changes = [{"terms": {"verb": list(CHANGE_VERBS)}}, {"term": {"is_request_row": True}}]
    by_time = [{"stageTimestamp": "desc"}, {"_doc": "desc"}]

    def page(*extra: dict[str, Any]) -> dict[str, Any]:
        return {"size": 50, "track_total_hits": False, "sort": by_time,
                "query": {"bool": {"filter": [*changes, *extra]}}}  # fmt: skip

    def user(name: str) -> dict[str, Any]:
        return {"bool": {"should": [{"term": {"user.username": name}},
                                    {"term": {"impersonatedUser.username": name}}]}}  # fmt: skip

    facets = {
        key: {"terms": {"field": field, "size": 50}}
        for key, field in (("resource", "objectRef.resource"), ("namespace", "objectRef.namespace"),
                           ("user", "user.username"), ("group", "user.groups"),
                           ("verb", "verb"), ("cluster", "cluster"), ("stage", "stage"))
    }  # fmt: skip

    def histogram(interval: str, *extra: dict[str, Any]) -> dict[str, Any]:
        return {"size": 0, "query": {"bool": {"filter": [*changes, *extra]}},
                "aggs": {"h": {"date_histogram": {"field": "stageTimestamp",
                                                  "fixed_interval": interval}}}}  # fmt: skip

    week = {"range": {"stageTimestamp": {"gte": "now-7d"}}}
    kube = {"term": {"objectRef.namespace": p.namespace}}
    return [
        ("API events default (changes, all time)", "page, changes", page()),
        (f"API events namespace={p.namespace}", "page, namespace", page(kube)),
        ("API events user=<kube-system controller>", "page, user or impersonated",
         page(user(p.user))),
        ("API events user=system:serviceaccount:kube-system:*", "page, user prefix",
         page({"prefix": {"user.username": "system:serviceaccount:kube-system:"}})),
        ("API events namespace+verb+resource", "page, ns+verb+resource",
         page({"term": {"objectRef.namespace": p.team_namespace}}, {"term": {"verb": "patch"}},
              {"term": {"objectRef.resource": "deployments"}})),
        ("API events last 7 days", "page, 7d", page(week)),
        ("API facets default (changes, all time)", "terms aggs, changes",
         {"size": 0, "query": {"bool": {"filter": changes}}, "aggs": facets}),
        (f"API facets namespace={p.namespace}", "terms aggs, namespace",
         {"size": 0, "query": {"bool": {"filter": [*changes, kube]}}, "aggs": facets}),
        ("UI / default (changes, all time) · lazy /histogram", "date_histogram 15h, changes",
         histogram("15h")),
        ("UI / last 7 days · lazy /histogram", "date_histogram 3h30m, 7d", histogram("210m", week)),
        (f"UI / namespace={p.namespace} · lazy /histogram", "date_histogram 15h, namespace",
         histogram("15h", kube)),
    ]  # fmt: skip


def es_time(es_url: str, p: Picks, args: argparse.Namespace) -> dict[str, Timing]:
    results: dict[str, Timing] = {}
    with httpx.Client(base_url=es_url, timeout=300) as es:

        def search(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            # No shard request cache: every run computes its aggregations (as PostgreSQL does).
            response = es.post(f"/{ES_INDEX}/_search?request_cache=false", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        def timed(name: str, description: str, body: dict[str, Any]) -> None:
            search(body)
            timing = Timing(f"ES {description}")
            for _ in range(args.runs):
                timing.samples.append(search(body)[0])
            results[name] = timing
            figures = timing.figures()
            log(f"ES {description:55} p50 {figures['p50_ms']:9.1f}  p95 {figures['p95_ms']:9.1f}")

        for name, description, body in es_queries(p):
            timed(name, description, body)
        # search_after: page 1,000 of the changes (walked once), then timed.
        body = es_queries(p)[0][2]
        after = None
        for _ in range(999):
            hits = search({**body, **({"search_after": after} if after else {})})[1]["hits"]
            if not hits["hits"]:
                after = None
                break
            after = hits["hits"][-1]["sort"]
        if after is not None:
            timed("API page 1,000 by cursor, changes (dashboard)", "search_after page 1,000",
                  {**body, "search_after": after})  # fmt: skip
    return results


def with_elasticsearch(url: str, p: Picks, args: argparse.Namespace) -> dict[str, Any]:
    from tests.es_server import EsServer

    count = min(args.es_events, args.events)
    with (
        tempfile.TemporaryDirectory(prefix="at-scale-es-") as tmp,
        EsServer(Path(tmp), heap=args.es_heap) as node,
    ):
        log(f"elasticsearch {node.url}: loading the newest {count:,} events")
        loaded = asyncio.run(es_load(node.url, url, count))
        log(f"elasticsearch: {loaded['docs']:,} docs in {loaded['load_s']:.0f} s"
                f" ({loaded['docs_per_s']:,}/s), {loaded['bytes_per_doc']} bytes/doc")  # fmt: skip
        timings = es_time(node.url, p, args)
    return {"loaded": loaded, "timings": timings}


# --- report ---------------------------------------------------------------------------------


def table(results: dict[str, Timing], es: dict[str, Timing], es_docs: int | None) -> str:
    head = f"{'query':70} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9} {'runs':>4}"
    if es:
        head += f"   {'ES p50':>8} {'ES p95':>8}  (ES: {es_docs:,} docs)"
    lines = [head, "-" * len(head)]
    for name in [*results, *(n for n in es if n not in results)]:
        if name in results:
            f = results[name].figures()
            line = f"{name[:70]:70} {f['p50_ms']:9.1f} {f['p95_ms']:9.1f} {f['max_ms']:9.1f}"
            line += f" {f['runs']:4}"
        else:
            line = f"{name[:70]:70} {'-':>9} {'-':>9} {'-':>9} {'-':>4}"
        if name in es:
            e = es[name].figures()
            line += f"   {e['p50_ms']:8.1f} {e['p95_ms']:8.1f}  {es[name].name[3:]}"
        lines.append(line)
    return "\n".join(lines)


def compare(paths: list[Path], *, to: int) -> str:
    """p50/p95 per query from several --json files side by side; with two fills of different
    sizes, each query's p95 extrapolated to `to` events by a power law through the two points
    (t = a * N^b: b = log(t2 / t1) / log(N2 / N1)), the method issue 9 asks to state."""
    runs = [json.loads(path.read_text()) for path in paths]
    names = list(dict.fromkeys(name for run in runs for name in run.get("queries", {})))
    sizes = [int(run["events"]) for run in runs]
    scaling = len(runs) == 2 and sizes[0] != sizes[1]
    head = f"{'query':70}" + "".join(f" {f'p50/p95 @{n / 1e6:g}M':>19}" for n in sizes)
    head += f" {'<50':>4}"
    if scaling:
        head += f" {'b':>5} {f'p95 @{to / 1e6:g}M':>12}"
    lines = [head, "-" * len(head), *([" " * 70 + "".join(f" {p.name[:19]:>19}" for p in paths)])]
    for name in names:
        line = f"{name[:70]:70}"
        cells = [run.get("queries", {}).get(name) for run in runs]
        for cell in cells:
            line += f" {cell['p50_ms']:9.1f}/{cell['p95_ms']:9.1f}" if cell else f" {'-':>19}"
        last = cells[-1]
        line += f" {('ok' if last['p95_ms'] < GOAL_P95_MS else 'MISS') if last else '':>4}"
        if scaling and all(cells):
            small, large = (cells[0], cells[1]) if sizes[0] < sizes[1] else (cells[1], cells[0])
            n1, n2 = sorted(sizes)
            b = math.log(large["p95_ms"] / small["p95_ms"]) / math.log(n2 / n1)
            line += f" {b:5.2f} {large['p95_ms'] * (to / n2) ** b:12.1f}"
        lines.append(line)
    for key in ("export_rows_per_s", "rss_mib_max", "bytes_per_event", "fill_s"):
        lines.append(f"{key:70}" + "".join(f" {run.get(key, '-')!s:>19}" for run in runs))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--reuse", type=Path, help="keep/reuse the filled data under DIR/<key>")
    parser.add_argument("--json", type=Path, help="write the figures as JSON to PATH")
    parser.add_argument(
        "--runs", type=int, default=20, help="timed runs per query (after one warm-up)"
    )
    parser.add_argument(
        "--slow-runs", type=int, default=3, help="runs for a query slower than --slow-ms"
    )
    parser.add_argument("--slow-ms", type=float, default=1000.0)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=99_996, help="rows per INSERT ... SELECT")
    parser.add_argument("--jobs", type=int, default=2, help="fill connections in parallel")
    parser.add_argument("--fill-only", action="store_true", help="fill (or reuse) and stop")
    parser.add_argument("--no-http", action="store_true", help="skip the server (e.g. ES only)")
    parser.add_argument("--elasticsearch", action="store_true")
    parser.add_argument(
        "--es-events",
        type=int,
        default=2_000_000,
        help="newest events loaded into Elasticsearch (a subset when < --events)",
    )
    parser.add_argument("--es-heap", default="1g")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="print the queries of earlier --json files side by side and exit",
    )
    parser.add_argument(
        "--to",
        type=int,
        default=50_000_000,
        help="with --compare of two fill sizes: extrapolate p95 to this N",
    )
    args = parser.parse_args()  # fmt: skip
    if args.compare:
        print(compare(args.compare, to=args.to))
        return 0
    report: dict[str, Any] = {
        "events": args.events,
        "machine": f"{os.cpu_count()} cores, load at start {load_average()}",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema_heads": schema_heads(),
    }
    with database(args) as (url, data_dir, figures):
        report.update(figures)
        report["events"] = args.events
        report.update(storage(url, args.events))
        log(
            f"storage: {report['bytes_per_event']} bytes/event in all"
            f" ({report['audit_event_bytes_per_event']} in audit_event and its indexes)"
        )
        if args.fill_only:
            print(json.dumps(report, indent=2))
            return 0
        picks = pick(url, args.export_rows)
        es: dict[str, Any] = {}
        results: dict[str, Timing] = {}
        if not args.no_http:
            with server(url, data_dir) as (http, sampler):
                log(f"serve is up; timing queries (load {load_average()})")
                timer = Timer(http, args)
                results = timer.results
                report.update(run_queries(timer, picks))
                report["load_after_queries"] = load_average()
                report["export"] = {k: time_export(http, picks, k) for k in ("csv", "ndjson")}
                report["export_rows_per_s"] = report["export"]["csv"]["rows_per_s"]
                report["rss_mib_max"] = round(sampler.max_kib / 1024, 1)
                report["rss_mib_hwm"] = round(sampler.peak_hwm_kib() / 1024, 1)
                report["rss_mib_max_one_process"] = round(sampler.max_one_kib / 1024, 1)
                report["server_processes"] = sampler.processes
                report["pss_mib_max"] = round(sampler.max_pss_kib / 1024, 1)
                report["rss_samples"] = sampler.samples
        report["load_at_end"] = load_average()
        if args.elasticsearch:
            es = with_elasticsearch(url, picks, args)
            report["elasticsearch"] = {
                **es["loaded"],
                "subset": es["loaded"]["docs"] < args.events,
                "queries": {name: {"equivalent_of": t.name[3:], **t.figures()}
                            for name, t in es["timings"].items()},
            }  # fmt: skip
    report["queries"] = {name: t.figures() for name, t in results.items()}
    print()
    print(
        f"audit-timeline at {args.events:,} events ({report['machine']};"
        f" fill {report['fill_s'] / 60:.1f} min, {report['bytes_per_event']} bytes/event)"
    )
    print(table(results, es.get("timings", {}), es["loaded"]["docs"] if es else None))
    for kind in report.get("export", {}):
        e = report["export"][kind]
        print(
            f"export.{kind:6} {e['rows']:>10,} rows in {e['seconds']:6.1f} s"
            f" = {e['rows_per_s']:>9,} rows/s"
        )
    if "rss_mib_max" in report:
        print(
            f"server RSS max {report['rss_mib_max']} MiB over {report['server_processes']}"
            f" processes (PSS {report['pss_mib_max']} MiB;"
            f" largest one {report['rss_mib_max_one_process']} MiB;"
            f" sum of VmHWM {report['rss_mib_hwm']} MiB)"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
