"""Weekly partitions of audit_event: the identity (cluster, auditID, stage) stays unique across
them, hostile timestamps land in the default partition, retention drops whole weeks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from app.audit import partitions, queries
from app.audit.request_rows import plan_insert
from app.db import make_engine
from app.migrate import upgrade_to_head
from tests.builders import audit_event
from tests.conftest import query_all
from tests.pg import TestPostgres

ASYNC = pytest.mark.asyncio(loop_scope="session")

NOW = datetime.now(UTC)


async def ingest(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, int]:
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
    response = await client.post("/ingest", json=body, params={"cluster": "test"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def at(moment: datetime, **overrides: Any) -> dict[str, Any]:
    stamp = moment.isoformat().replace("+00:00", "Z")
    return audit_event(requestReceivedTimestamp=stamp, stageTimestamp=stamp, **overrides)


def partition_of(database_url: str, audit_id: str) -> list[str]:
    return [
        row[0]
        for row in query_all(
            database_url,
            "SELECT tableoid::regclass::text FROM audit_event WHERE audit_id = %s ORDER BY 1",
            (audit_id,),
        )
    ]


def row(cluster: str, audit_id: str, stage: str) -> dict[str, str]:
    return {"cluster": cluster, "audit_id": audit_id, "stage": stage}


def test_plan_keeps_first_of_an_identity_and_flags_the_most_complete_stage() -> None:
    stored_at = datetime(2026, 11, 20, tzinfo=UTC)
    stored = [
        ("c", "a", "RequestReceived", 7, stored_at, True),
        ("c", "b", "Panic", 8, stored_at, True),
    ]
    rows = [
        row("c", "a", "ResponseComplete"),
        row("c", "a", "ResponseComplete"),  # repeat within the batch
        row("c", "a", "RequestReceived"),  # repeat of a stored identity
        row("c", "b", "ResponseComplete"),  # less complete than the stored Panic
        row("c", "n", "RequestReceived"),
        row("c", "n", "ResponseStarted"),
    ]
    plan = plan_insert(rows, stored)
    assert plan.new == [0, 3, 4, 5]
    assert plan.repeated == [1, 2]
    assert plan.flagged == frozenset({0, 5})
    assert plan.superseded == [(7, stored_at)]


@ASYNC
async def test_identity_is_unique_across_weeks(
    client: httpx.AsyncClient, database_url: str
) -> None:
    first = at(NOW - timedelta(days=15))
    same_identity = at(NOW - timedelta(days=1), auditID=first["auditID"], verb="delete")
    assert await ingest(client, [first]) == {"stored": 1, "duplicates": 0, "quarantined": 0}
    # A different event under the stored identity, in another week's partition: quarantined.
    assert await ingest(client, [same_identity]) == {"stored": 0, "duplicates": 0, "quarantined": 1}
    # Retries of either are no-ops; the one stored stays where its week is.
    assert (await ingest(client, [first]))["duplicates"] == 1
    assert (await ingest(client, [same_identity]))["stored"] == 0
    week = partitions.partition_name(partitions.week_start(NOW - timedelta(days=15)))
    assert partition_of(database_url, first["auditID"]) == [week]
    errors = query_all(database_url, "SELECT error FROM quarantined_item")
    assert len(errors) == 1
    assert "is already stored" in errors[0][0]


@ASYNC
async def test_concurrent_batches_store_an_identity_once_whatever_its_week(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ids = [f"req-{i}" for i in range(60)]
    weeks = [NOW - timedelta(days=days) for days in (2, 9, 16, 23)]
    batches = [[at(moment, auditID=audit_id) for audit_id in ids] for moment in weeks]
    results = await asyncio.gather(*(ingest(client, batch) for batch in batches))
    assert sum(r["stored"] for r in results) == len(ids)
    assert sum(r["quarantined"] for r in results) == 3 * len(ids)
    counts = query_all(database_url, "SELECT count(*), count(DISTINCT audit_id) FROM audit_event")
    assert counts == [(len(ids), len(ids))]
    flagged = query_all(database_url, "SELECT count(*) FROM audit_event WHERE is_request_row")
    assert flagged == [(len(ids),)]


@ASYNC
async def test_hostile_timestamps_land_in_the_default_partition(
    client: httpx.AsyncClient, database_url: str
) -> None:
    before = {
        row[0]
        for row in query_all(database_url, "SELECT inhrelid::regclass::text FROM pg_inherits")
    }
    odd = [at(datetime(1970, 1, 1, tzinfo=UTC)), at(datetime(2999, 12, 31, tzinfo=UTC))]
    odd += [at(datetime(1990 + i, 3, 1, tzinfo=UTC)) for i in range(20)]
    assert (await ingest(client, odd))["stored"] == len(odd)
    after = {
        row[0]
        for row in query_all(database_url, "SELECT inhrelid::regclass::text FROM pg_inherits")
    }
    assert after == before  # no partition per hostile week
    for event in odd:
        assert partition_of(database_url, event["auditID"]) == ["audit_event_default"]
    listed = await client.get("/api/v1/events", params={"limit": 100})
    assert len(listed.json()["items"]) == len(odd)


@ASYNC
async def test_retention_drops_whole_weeks_and_deletes_the_rest(
    client: httpx.AsyncClient, database_url: str
) -> None:
    cutoff = NOW - timedelta(days=30)
    ages = (1, 10, 29, 31, 45, 60, 100)
    events = [at(NOW - timedelta(days=days)) for days in ages]
    old = at(datetime(1980, 1, 1, tzinfo=UTC))  # default partition: deleted row by row
    await ingest(client, [*events, old])
    old_weeks = {
        partitions.partition_name(partitions.week_start(NOW - timedelta(days=days)))
        for days in ages
        if partitions.week_start(NOW - timedelta(days=days)) + partitions.WEEK <= cutoff
    }
    engine = make_engine(database_url, pool_size=1)
    try:
        deleted, quarantined = await queries.delete_older_than(engine, cutoff=cutoff)
    finally:
        await engine.dispose()
    assert (deleted, quarantined) == (len([d for d in ages if d > 30]) + 1, 0)
    kept = {row[0] for row in query_all(database_url, "SELECT audit_id FROM audit_event")}
    assert kept == {e["auditID"] for e, days in zip(events, ages, strict=True) if days < 30}
    left = {
        row[0]
        for row in query_all(database_url, "SELECT inhrelid::regclass::text FROM pg_inherits")
    }
    assert old_weeks
    assert not old_weeks & left
    assert "audit_event_default" in left


@ASYNC
async def test_a_week_that_cannot_be_created_in_time_is_stored_in_the_default_partition(
    client: httpx.AsyncClient, database_url: str
) -> None:
    moment = NOW - timedelta(days=200)  # inside the horizon, no partition yet
    name = partitions.partition_name(partitions.week_start(moment))
    # A long reader holds audit_event: creating a partition would have to wait for it.
    with psycopg.connect(database_url) as reader:
        reader.execute("SELECT count(*) FROM audit_event")
        first = at(moment)
        assert (await ingest(client, [first]))["stored"] == 1
    assert partition_of(database_url, first["auditID"]) == ["audit_event_default"]
    # Later rows of that week join it there (the week is not created over rows it would hold).
    partitions._failed_at.clear()
    second = at(moment + timedelta(minutes=1))
    assert (await ingest(client, [second]))["stored"] == 1
    assert partition_of(database_url, second["auditID"]) == ["audit_event_default"]
    tables = {row[0] for row in query_all(database_url, "SELECT tablename FROM pg_tables")}
    assert name not in tables


def test_migration_bounds_are_utc_weeks_whatever_the_server_time_zone(
    postgres: TestPostgres,
) -> None:
    # Europe/Berlin changes its clocks on the last Sunday of October and of March: week
    # arithmetic in that zone would put the bounds an hour off (and overlap the app's weeks).
    url = postgres.create_database("audit_timeline_partition_zone")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE audit_timeline_partition_zone SET timezone = 'Europe/Berlin'")
    upgrade_to_head(url)
    bounds = query_all(
        url,
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'audit_event'::regclass AND c.relname <> 'audit_event_default'",
    )
    assert len(bounds) >= 10
    for name, bound in bounds:
        start = datetime.strptime(name.removeprefix("audit_event_p"), "%Y%m%d").replace(tzinfo=UTC)
        with psycopg.connect(url) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            low, high = conn.execute(
                "SELECT (regexp_match(%s, $$FROM \\('([^']+)'\\)$$))[1]::timestamptz,"
                " (regexp_match(%s, $$TO \\('([^']+)'\\)$$))[1]::timestamptz",
                (bound, bound),
            ).fetchone()
        assert (low, high) == (start, start + partitions.WEEK), (name, bound)
