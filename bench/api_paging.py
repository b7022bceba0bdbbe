"""GET /api/v1/events latency at increasing depth (keyset cursor) vs SQL OFFSET at the same depth.

Run: .venv/bin/python bench/api_paging.py [--events N]
Fills its own embedded PostgreSQL with N synthetic events (INSERT ... SELECT generate_series),
then times page 1 and pages deep in the timeline, with and without filters.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

import httpx  # noqa: E402
import psycopg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audit.schemas import Cursor  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade_to_head  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.pg import temporary_postgres  # noqa: E402

FILL = """
INSERT INTO audit_event (cluster, audit_id, stage, level, verb, request_uri, resource, namespace,
    name, username, user_groups, source_ips, user_agent, response_code, stage_at, requested_at,
    source, raw, is_request_row)
SELECT 'bench', 'id-' || g, 'ResponseComplete', 'Metadata',
    (ARRAY['get','list','create','patch','update','delete','watch'])[1 + g %% 7],
    '/api/v1/namespaces/ns-' || (g %% 50) || '/pods', (ARRAY['pods','networkpolicies',
    'configmaps','secrets','serviceaccounts'])[1 + g %% 5], 'ns-' || (g %% 50),
    'obj-' || (g %% 5000), 'user-' || (g %% 200), ARRAY['system:authenticated'],
    ARRAY['10.0.0.1'], 'kubectl/v1.31', (ARRAY[200,201,403,404,409])[1 + g %% 5],
    now() - make_interval(secs => g * 0.5), now() - make_interval(secs => g * 0.5),
    'webhook', jsonb_build_object('auditID', 'id-' || g), true
FROM generate_series(1, %s) AS g
"""


async def timed_get(client: httpx.AsyncClient, params: dict[str, object], runs: int) -> float:
    """Median milliseconds of GET /api/v1/events with params."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get("/api/v1/events", params=params)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(samples)


def offset_ms(url: str, depth: int, where: str, runs: int) -> float:
    samples = []
    with psycopg.connect(url) as conn:
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute(
                f"SELECT * FROM audit_event {where} ORDER BY stage_at DESC, id DESC"
                " LIMIT 50 OFFSET %s",
                (depth,),
            ).fetchall()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def cursor_at(url: str, depth: int, where: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT stage_at, id FROM audit_event {where} ORDER BY stage_at DESC, id DESC"
            " LIMIT 1 OFFSET %s",
            (depth - 1,),
        ).fetchone()
    assert row is not None
    return Cursor(stage_at=row[0], id=row[1]).encode()


async def run(url: str, count: int, data_dir: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        data_dir=data_dir,  # type: ignore[call-arg]
        redaction_key="bench-redaction-key-0123456789ab",
        log_level="WARNING",
    )
    app = create_app(settings)
    cases = [
        ("no filter", {}, ""),
        ("namespace=ns-7", {"namespace": "ns-7"}, "WHERE namespace = 'ns-7'"),
        ("verb=delete&user=user-9", {"verb": "delete", "user": "user-9"},
         "WHERE verb = 'delete' AND (username = 'user-9' OR impersonated_user = 'user-9')"),
    ]  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            print(f"{'filter':28} {'depth':>8} {'keyset API ms':>14} {'OFFSET SQL ms':>14}")
            for label, params, where in cases:
                with psycopg.connect(url) as conn:
                    matching = conn.execute(f"SELECT count(*) FROM audit_event {where}").fetchone()
                total = matching[0] if matching else 0
                for depth in (0, total // 100, total // 2, total - 60):
                    if depth < 0:
                        continue
                    page = dict(params, limit=50)
                    if depth:
                        page["cursor"] = cursor_at(url, depth, where)
                    api = await timed_get(client, page, 7)
                    offset = offset_ms(url, depth, where, 3)
                    print(f"{label:28} {depth:>8} {api:>14.1f} {offset:>14.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with temporary_postgres("at-bench-") as pg:
        tmp = pg.pgdata.parent
        url = pg.create_database("bench")
        upgrade_to_head(url)
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FILL, (args.events,))
            conn.execute("VACUUM ANALYZE audit_event")
        print(f"filled {args.events} events in {time.perf_counter() - started:.1f} s")
        asyncio.run(run(url, args.events, tmp))


if __name__ == "__main__":
    main()
