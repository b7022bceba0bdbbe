"""The rollups stay equal to a GROUP BY over what audit_event stores: after mixed batches,
retries, superseded stages, conflicting events, concurrent overlapping batches, deletes and
delete_rollups_before; and histogram/facet answers from them equal counts over the events."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from app.audit import rollups
from app.audit.schemas import TimelineFilter
from tests.builders import audit_event
from tests.conftest import query_all

pytestmark = pytest.mark.asyncio(loop_scope="session")

STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
KEYS = "cluster, verb, stage, response_code"
START = datetime(2026, 11, 20, 10, tzinfo=UTC)


def expected(database_url: str, keys: str) -> list[tuple[Any, ...]]:
    return query_all(
        database_url,
        f"SELECT date_trunc('hour', stage_at, 'UTC') AS hour, {keys}, count(*),"
        " count(*) FILTER (WHERE is_request_row) FROM audit_event"
        f" GROUP BY hour, {keys} ORDER BY hour, {keys}",
    )


def stored(database_url: str, table: str, keys: str) -> list[tuple[Any, ...]]:
    # Zero rows are what deleted events leave behind: they count nothing.
    return query_all(
        database_url,
        f"SELECT hour, {keys}, stage_events, requests FROM {table}"
        f" WHERE stage_events <> 0 OR requests <> 0 ORDER BY hour, {keys}",
    )


def assert_rollups_match(database_url: str) -> None:
    assert stored(database_url, "event_rollup_hourly", KEYS) == expected(database_url, KEYS)


def random_event(rng: random.Random, request: int) -> dict[str, Any]:
    at = START + timedelta(minutes=rng.randrange(0, 30 * 60), seconds=rng.random())
    user: dict[str, Any] = {"username": rng.choice(["alice", "bob", "system:kube-scheduler"])}
    extra: dict[str, Any] = {}
    if rng.random() < 0.2:
        extra["impersonatedUser"] = {"username": "carol"}
    namespace = rng.choice(["default", "kube-system", None])
    ref: dict[str, Any] = {"resource": rng.choice(["pods", "configmaps", "leases"]), "name": "x"}
    if namespace:
        ref["namespace"] = namespace
    if ref["resource"] == "leases":
        ref["apiGroup"] = "coordination.k8s.io"
    if rng.random() < 0.2:
        ref["subresource"] = "status"
    return audit_event(
        auditID=f"req-{request}",
        stage=rng.choice(STAGES),
        verb=rng.choice(["get", "list", "update", "patch", "create"]),
        user=user,
        objectRef=ref,
        stageTimestamp=at.isoformat(),
        requestReceivedTimestamp=at.isoformat(),
        responseStatus={"metadata": {}, "code": rng.choice([200, 201, 403, 404, 500])},
        **extra,
    )


async def post(client: httpx.AsyncClient, items: list[dict[str, Any]], cluster: str) -> None:
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    response = await client.post("/ingest", json=body, params={"cluster": cluster})
    assert response.status_code == 200, response.text


async def test_rollups_equal_a_group_by_over_the_events(
    client: httpx.AsyncClient, app: FastAPI, database_url: str
) -> None:
    rng = random.Random(9)
    events = [random_event(rng, rng.randrange(0, 150)) for _ in range(600)]
    # Mixed batches, some stages of a request arriving in later batches (superseding the
    # flagged one), then every batch again (retries: no-ops).
    for i in range(0, len(events), 97):
        await post(client, events[i : i + 97], "a")
    assert_rollups_match(database_url)
    for i in range(0, len(events), 151):
        await post(client, events[i : i + 151], "a")
    # A different event under a stored identity is quarantined, not counted.
    changed = {**events[0], "verb": "delete"}
    await post(client, [changed], "a")
    assert_rollups_match(database_url)
    # Concurrent overlapping batches of new requests, in both orders, into another cluster.
    fresh = [random_event(rng, 1000 + rng.randrange(0, 200)) for _ in range(800)]
    windows = [fresh[i * 100 : i * 100 + 300] for i in range(6)]
    await asyncio.gather(
        *(post(client, w if i % 2 else w[::-1], "b") for i, w in enumerate(windows))
    )
    assert_rollups_match(database_url)
    # Deleting events (prune's straddling partition) subtracts them.
    cut = START + timedelta(hours=2, minutes=30)
    query_all(database_url, "DELETE FROM audit_event WHERE stage_at < %s RETURNING 1", (cut,))
    assert_rollups_match(database_url)
    # Exact answers over any range: partial hours at both edges come from the events.
    since, until = START + timedelta(hours=2, minutes=45), START + timedelta(hours=5, minutes=10)
    async with app.state.sessionmaker() as session:
        for f in (
            TimelineFilter(since=since, until=until),
            TimelineFilter(since=since, until=until, per="request", include_reads=False),
            TimelineFilter(namespace=["kube-system"], user=["car*"], per="request"),
            TimelineFilter(resource=["leases.coordination.k8s.io/status"], status="4xx"),
            TimelineFilter(verb=["get"], stage=["Panic"], since=since),
            # Whole-hour bars from the rollups, partial hours at both ends from the events.
            TimelineFilter(since=since, until=until + timedelta(hours=20), status="success"),
            TimelineFilter(since=since, until=until + timedelta(hours=20), per="request"),
            TimelineFilter(verb=["update"], cluster=["b"], per="request", include_reads=False),
        ):
            rows = (await client.get("/api/v1/events", params=api_params(f))).json()["items"]
            count = len(rows)
            if rollups.is_rollup_filter(f):
                assert await rollups.matching_count(session, f, now=datetime.now(UTC)) == count
            buckets = await rollups.histogram(session, f, now=datetime.now(UTC))
            assert sum(b.count for b in buckets) == count, f
            assert sum(b.failures for b in buckets) == sum(
                1 for r in rows if (r["response_code"] or 0) >= 400
            ), f
            facets = (await rollups.facet_counts(session, f, now=datetime.now(UTC))).counts
            # A facet not filtered on counts every match once.
            unfiltered = next(facet for facet in ("cluster", "stage") if not getattr(f, facet))
            assert sum(n for _, n in facets[unfiltered]) == count, f
    # Prune drops whole partitions (no trigger fires), then forgets the rollup hours before
    # its cutoff: the same as a DELETE with the trigger off.
    cutoff = START + timedelta(hours=5)
    with psycopg.connect(database_url) as conn:
        conn.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_rollup_delete")
        conn.execute("DELETE FROM audit_event WHERE stage_at < %s", (cutoff,))
        conn.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_rollup_delete")
    async with app.state.sessionmaker.begin() as session:
        await rollups.delete_rollups_before(session, cutoff=cutoff)
        with pytest.raises(ValueError, match="not at the start of an hour"):
            await rollups.delete_rollups_before(session, cutoff=until)
    assert_rollups_match(database_url)
    before = query_all(
        database_url,
        "SELECT count(*) FROM event_rollup_hourly WHERE hour < %s",
        (cutoff,),
    )
    assert before == [(0,)]


def api_params(f: TimelineFilter) -> dict[str, Any]:
    params = f.model_dump(mode="json", exclude_none=True, exclude={"limit"})
    return {**{k: v for k, v in params.items() if v != []}, "limit": 1000}
