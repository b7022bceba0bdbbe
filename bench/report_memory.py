"""Change report and coverage at scale: peak memory of `audit-timeline report`, and how long the
coverage summary takes to answer against the same aggregate computed from the events.

    python bench/report_memory.py --rows 1000000 --objects 20000 [--json FILE]

Starts the embedded PostgreSQL under a temporary directory (or uses --database-url), copies one
RequestResponse update N times with INSERT ... SELECT generate_series (the coverage trigger runs
on these inserts as on any other), then runs `audit-timeline report --format bundle` (and csv)
as subprocesses and reads their peak RSS (ru_maxrss of the children). Linux only; prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from app.embedded_db import start_embedded_postgres
from app.migrate import upgrade_to_head
from app.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from embedded import stop_embedded_postgres  # noqa: E402
from export_memory import insert_template  # noqa: E402

from tests.builders import audit_event  # noqa: E402

KEY = "bench-redaction-key-0123456789"
POLICY = {
    "kind": "NetworkPolicy",
    "apiVersion": "networking.k8s.io/v1",
    "metadata": {"name": "allow-web", "namespace": "payments", "resourceVersion": "1"},
    "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
}
TEMPLATE = audit_event(
    auditID="bench-template",
    verb="update",
    requestObject=POLICY,
    responseObject=POLICY,
    responseStatus={"metadata": {}, "code": 200},
    stageTimestamp="2026-11-20T10:00:00.000000Z",
)
# Objects: name-(g % objects); each copy one second earlier; bodies differ per copy (a label).
COPY_SQL = """
INSERT INTO audit_event (
    cluster, audit_id, stage, level, verb, request_uri, api_group, api_version, resource,
    subresource, namespace, name, username, user_uid, user_groups, impersonated_user,
    impersonated_groups, source_ips, user_agent, response_code, response_status,
    response_reason, response_message, authz_decision, authz_reason, requested_at, stage_at,
    source, source_meta, request_object, response_object, raw, is_redacted)
SELECT cluster, 'bench-' || g, stage, level, verb, request_uri, api_group, api_version, resource,
    subresource, namespace, name || '-' || (g %% %(objects)s), username, user_uid, user_groups,
    impersonated_user, impersonated_groups, source_ips, user_agent, response_code,
    response_status, response_reason, response_message, authz_decision, authz_reason,
    requested_at - g * interval '1 second', stage_at - g * interval '1 second', source,
    source_meta, request_object,
    jsonb_set(response_object, '{metadata,labels}', jsonb_build_object('copy', g::text)), raw,
    is_redacted
FROM audit_event t, generate_series(%(start)s::bigint, %(stop)s::bigint) AS g
WHERE t.audit_id = 'bench-template'
"""
SCAN_SQL = """
SELECT cluster, api_group, resource, subresource, verb, level, source, count(*),
    max(stage_at) FROM audit_event WHERE cluster = 'bench'
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


def fill(url: str, rows: int, objects: int, settings: Settings) -> float:
    asyncio.run(insert_template(url, settings, TEMPLATE))
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(1, rows, 200_000):
            stop = min(start + 200_000 - 1, rows - 1)
            conn.execute(COPY_SQL, {"start": start, "stop": stop, "objects": objects})
        conn.execute("VACUUM ANALYZE audit_event")
    return time.monotonic() - started


def run_report(env: dict[str, str], fmt: str, out: Path) -> tuple[float, int, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    command = [
        sys.executable, "-m", "app.cli", "report", "--cluster", "bench",
        "--since", "2000-01-01T00:00:00Z", "--until", "2100-01-01T00:00:00Z",
        "--format", fmt, "-o", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest of any child so far: report only growth honestly.
    return elapsed, max(peak, before), done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--database-url", help="use this database instead of an embedded one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, object] = {"rows": args.rows, "objects": args.objects}
    with tempfile.TemporaryDirectory(prefix="at-bench-") as tmp:
        data_dir = Path(tmp)
        settings = Settings(_env_file=None, data_dir=data_dir, redaction_key=KEY)  # type: ignore[call-arg]
        url = args.database_url or start_embedded_postgres(data_dir)
        try:
            upgrade_to_head(url)
            figures["insert_s"] = round(fill(url, args.rows, args.objects, settings), 1)
            with psycopg.connect(url) as conn:
                summary_rows = conn.execute("SELECT count(*) FROM coverage_hourly").fetchone()
                started = time.monotonic()
                conn.execute(
                    "SELECT cluster, api_group, resource, verb, level, sum(requests),"
                    " max(last_seen_at) FROM coverage_hourly GROUP BY 1, 2, 3, 4, 5"
                ).fetchall()
                figures["coverage_summary_ms"] = round((time.monotonic() - started) * 1000, 1)
                started = time.monotonic()
                conn.execute(SCAN_SQL).fetchall()
                figures["coverage_scan_ms"] = round((time.monotonic() - started) * 1000, 1)
            figures["summary_rows"] = summary_rows[0] if summary_rows else 0
            env = {
                **os.environ,
                "AUDIT_TIMELINE_DATABASE_URL": url,
                "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
                "AUDIT_TIMELINE_REDACTION_KEY": KEY,
                "AUDIT_TIMELINE_LOG_LEVEL": "WARNING",
            }
            for fmt in ("csv", "bundle"):
                out = data_dir / f"report.{fmt}"
                elapsed, peak_kib, said = run_report(env, fmt, out)
                figures[f"report_{fmt}_s"] = round(elapsed, 1)
                figures[f"report_{fmt}_peak_rss_mib"] = round(peak_kib / 1024, 1)
                figures[f"report_{fmt}_bytes"] = out.stat().st_size
                print(f"report --format {fmt}: {said}")  # noqa: T201
        finally:
            if args.database_url is None:
                stop_embedded_postgres(data_dir)
    figures["at"] = datetime.now(UTC).isoformat()
    for key, value in figures.items():
        print(f"{key}: {value}")  # noqa: T201
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
