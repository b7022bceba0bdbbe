"""Count timeline rows against requests on the real fixtures (issue 7: one request, one row).

    python bench/request_rows.py [--project DIR] [--json PATH]

Loads ../shared/fixtures/real/*.jsonl through POST /ingest of the project at DIR (default: this
one; pass another worktree to measure its code) into a temporary embedded PostgreSQL, reads the
timeline's count from `/` (changes only, and with reads) and the number of distinct requests
(cluster + auditID) matching the same filter from the database, and prints both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--project", type=Path, default=ROOT, help="project tree whose code to run")
parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
ARGS = parser.parse_args()
sys.path.insert(0, str(ARGS.project.resolve()))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from app.main import create_app  # noqa: E402
from app.migrate import upgrade_to_head  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.conftest import fixture_paths  # noqa: E402
from tests.pg import temporary_postgres  # noqa: E402

CHANGES = "('create', 'update', 'patch', 'delete', 'deletecollection')"
COUNT = re.compile(r"<strong[^>]*>([\d,]+)</strong> matching")


async def measure(database_url: str) -> dict[str, int]:
    settings = Settings(
        _env_file=None, database_url=database_url, data_dir=Path(tempfile.mkdtemp())
    )  # type: ignore[call-arg]
    app = create_app(settings)
    figures: dict[str, int] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            for path in fixture_paths():
                lines = [line for line in path.read_text().splitlines() if line.strip()]
                for start in range(0, len(lines), 400):
                    items = [json.loads(line) for line in lines[start : start + 400]]
                    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
                    response = await http.post("/ingest", json=body, params={"cluster": "fixtures"})
                    response.raise_for_status()
            for name, params in (("changes", {}), ("all_verbs", {"include_reads": "true"})):
                page = await http.get("/", params=params)
                match = COUNT.search(page.text)
                assert match, "no count on the timeline page"
                figures[f"timeline_rows_{name}"] = int(match.group(1).replace(",", ""))
    with psycopg.connect(database_url) as conn:
        for name, where in (("changes", f"WHERE verb IN {CHANGES}"), ("all_verbs", "")):
            events, requests = conn.execute(
                "SELECT count(*), count(DISTINCT (cluster, audit_id))"  # noqa: S608
                f" FROM audit_event {where}"
            ).fetchone() or (0, 0)
            figures[f"stored_stage_events_{name}"] = int(events)
            figures[f"requests_{name}"] = int(requests)
    return figures


def main() -> None:
    warnings.simplefilter("ignore")
    with temporary_postgres("request-rows-") as postgres:
        url = postgres.create_database("request_rows")
        upgrade_to_head(url)
        figures = asyncio.run(measure(url))
    print(f"code: {ARGS.project.resolve()}")
    for key, value in figures.items():
        print(f"{key:32} {value:>8,}")
    if ARGS.json:
        ARGS.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
