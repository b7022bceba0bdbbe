"""bench/scale.py's fill: rows the app itself would have stored, with the issue's distributions.

A small fill (20,000 rows) in uneven chunks, through the app's own schema and triggers.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg.rows import dict_row

from app.audit.normalize import normalize_event, reconstruct_event
from app.redaction_key import make_redactor
from app.settings import Settings
from tests.conftest import query_all

EVENTS = 20_000
BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale_data.py"


def scale_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale_data", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scale_data"] = module
    spec.loader.exec_module(module)
    return module


def fill(database_url: str, end: datetime) -> ModuleType:
    data = scale_data()
    with psycopg.connect(database_url, autocommit=True) as conn:
        data.create_catalogs(conn)
        # Uneven chunks, out of order: every row is a function of its number alone.
        for start, stop in ((7_001, EVENTS), (1, 6_999), (7_000, 7_000)):
            data.fill_range(conn, start=start, stop=stop, events=EVENTS, end=end, seed="t")
    return data


def test_one_request_row_per_request_and_the_issues_distributions(database_url: str) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    data = fill(database_url, end)
    [(rows, requests, flagged, wrong)] = query_all(
        database_url,
        "SELECT sum(n), count(*), sum(flagged), count(*) FILTER (WHERE flagged <> 1"
        "   OR (n > 1 AND flagged_stage <> 'ResponseComplete'))"
        " FROM (SELECT count(*) AS n, count(*) FILTER (WHERE is_request_row) AS flagged,"
        "   min(stage) FILTER (WHERE is_request_row) AS flagged_stage"
        "   FROM audit_event GROUP BY cluster, audit_id) AS r",
    )
    assert rows == EVENTS
    assert requests == data.request_count(EVENTS) == flagged
    assert wrong == 0
    # The trigger saw every insert: one request counted per final stage.
    [(counted,)] = query_all(database_url, "SELECT sum(requests) FROM coverage_hourly")
    [(final,)] = query_all(
        database_url, "SELECT count(*) FROM audit_event WHERE stage = 'ResponseComplete'"
    )
    assert counted == final

    # The issue's distributions, within what 20,000 rows can show.
    [stats] = query_all(
        database_url,
        "SELECT avg((verb IN ('get', 'list', 'watch'))::int) FILTER (WHERE is_request_row),"
        " avg((response_object IS NOT NULL)::int), count(DISTINCT namespace),"
        " count(DISTINCT username), count(DISTINCT resource), count(DISTINCT cluster),"
        " count(*) FILTER (WHERE impersonated_user IS NOT NULL),"
        " count(*) FILTER (WHERE username LIKE 'system:serviceaccount:%:%'),"
        " count(*) FILTER (WHERE 'system:masters' = ANY(user_groups)),"
        " count(*) FILTER (WHERE stage <> 'ResponseComplete'),"
        " min(requested_at), max(stage_at) FROM audit_event",
    )
    reads, bodies, namespaces, users, resources, clusters = stats[:6]
    impersonated, service_accounts, masters, early_stages, first, last = stats[6:]
    assert 0.83 <= reads <= 0.87
    assert 0.025 <= bodies <= 0.05
    assert namespaces >= 250  # of 300 (skewed; all appear at a few 100,000 events)
    assert users >= 1_000  # of ~2,000
    assert resources == 39
    assert clusters == 4
    assert impersonated > 0
    assert masters > 0
    assert service_accounts > EVENTS // 4
    assert 0.1 * EVENTS <= early_stages <= 0.25 * EVENTS
    assert end - timedelta(days=30, minutes=1) <= first <= end - timedelta(days=29)
    assert end - timedelta(hours=1) <= last <= end + timedelta(minutes=10)


def test_columns_are_what_the_app_derives_from_the_raw_event(
    database_url: str, settings: Settings
) -> None:
    """Each row equals normalize_event() of its own event (raw + bodies), field by field."""
    fill(database_url, datetime.now(UTC).replace(microsecond=0))
    redactor = make_redactor(settings)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM audit_event").fetchall()
    mismatches = []
    for row in rows:
        event = reconstruct_event(row["raw"], row["request_object"], row["response_object"])
        assert event["kind"] == "Event"
        assert event["apiVersion"] == "audit.k8s.io/v1"
        columns = normalize_event(
            event, cluster=row["cluster"], source="webhook", redactor=redactor
        )
        mismatches += [(row["id"], k, v, row[k]) for k, v in columns.items() if row[k] != v]
    assert mismatches == []
    assert len(rows) == EVENTS
