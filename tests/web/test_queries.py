"""Dashboard queries on real PostgreSQL: facets, histogram, versions, history, export stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import queries, rollups
from app.audit.models import AuditEvent
from app.audit.queries import ObjectKey
from app.audit.schemas import TimelineFilter
from tests.builders import audit_event
from tests.web.conftest import post_events

pytestmark = pytest.mark.asyncio(loop_scope="session")


def at(minute: int) -> str:
    return (datetime(2026, 11, 20, 10, tzinfo=UTC) + timedelta(minutes=minute)).isoformat()


def event(minute: int, verb: str = "update", **overrides: Any) -> dict[str, Any]:
    ref = {"resource": "configmaps", "namespace": "default", "name": "settings"}
    return audit_event(
        verb=verb, objectRef=overrides.pop("objectRef", ref), stageTimestamp=at(minute), **overrides
    )


def body(version: int, name: str = "settings") -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": str(version)}}


async def rows_of(session: AsyncSession) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.stage_at, AuditEvent.id)
    return list((await session.scalars(stmt)).all())


async def test_facet_counts_are_exact_or_say_they_cover_the_newest_only(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = {"resource": "pods", "name": "settings"}
    old = [event(i, objectRef={**ref, "namespace": "old"}) for i in range(5)]
    new = [event(10 + i, objectRef={**ref, "namespace": "new"}) for i in range(3)]
    await post_events(client, [*old, *new])
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        exact = await rollups.facet_counts(session, TimelineFilter(), now=now)
        monkeypatch.setattr(rollups, "FACET_SAMPLE", 4)
        sampled = await rollups.facet_counts(session, TimelineFilter(), now=now)
        # A name substring: how many match is not known in advance.
        named = await rollups.facet_counts(session, TimelineFilter(q="settings"), now=now)
        few = await rollups.facet_counts(session, TimelineFilter(q="nothing"), now=now)
    assert exact.counts["namespace"] == [("old", 5), ("new", 3)]
    assert exact.sampled == {}
    # Namespaces are counted row by row: over the newest 4 of the 8, and said so.
    assert sampled.counts["namespace"] == [("new", 3), ("old", 1)]
    assert sampled.sampled["namespace"] == rollups.Sampled(newest=4, matching=8)
    # Verbs are kept by the rollup: exact however many match.
    assert sampled.counts["verb"] == [("update", 8)]
    assert "verb" not in sampled.sampled
    assert named.sampled["verb"] == rollups.Sampled(newest=4, matching=None)
    assert named.counts["namespace"] == [("new", 3), ("old", 1)]
    assert few.sampled == {}


async def test_facet_counts_ignore_their_own_filter(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await post_events(
        client,
        [
            event(1, objectRef={"resource": "pods", "namespace": "a"}),
            event(2, objectRef={"resource": "pods", "namespace": "b"}),
            event(3, objectRef={"resource": "secrets", "namespace": "a"}),
            event(4, "get", objectRef={"resource": "pods", "namespace": "a"}),
        ],
    )
    async with app.state.sessionmaker() as session:
        now = datetime.now(UTC)
        facets = (
            await rollups.facet_counts(
                session, TimelineFilter(namespace=["a"], include_reads=False), now=now
            )
        ).counts
        assert facets["namespace"] == [("a", 2), ("b", 1)]
        assert facets["resource"] == [("pods", 1), ("secrets", 1)]
        assert facets["verb"] == [("update", 2)]
        assert facets["cluster"] == [("test", 2)]
        everything = (await rollups.facet_counts(session, TimelineFilter(), now=now)).counts
        assert dict(everything["verb"]) == {"update": 3, "get": 1}


async def test_histogram_buckets_cover_the_range(client: httpx.AsyncClient, app: FastAPI) -> None:
    await post_events(
        client,
        [event(m, responseStatus={"metadata": {}, "code": 500 if m == 30 else 200}) for m in
         (0, 1, 30, 59)],
    )  # fmt: skip
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        buckets = await rollups.histogram(session, TimelineFilter(), now=now, bars=6)
        assert len(buckets) == 6
        assert buckets[0].start == datetime(2026, 11, 20, 10, tzinfo=UTC)
        assert [b.count for b in buckets] == [2, 0, 0, 1, 0, 1]
        assert [b.failures for b in buckets] == [0, 0, 0, 1, 0, 0]
        assert all(a.end == b.start for a, b in zip(buckets, buckets[1:], strict=False))
        ranged = await rollups.histogram(session, TimelineFilter(window="1h"), now=now, bars=4)
        assert len(ranged) == 4
        assert sum(b.count for b in ranged) == 0
        assert ranged[-1].end == now
        none = await rollups.histogram(session, TimelineFilter(namespace=["x"]), now=now)
        assert none == []


async def test_previous_version_skips_failures_statuses_and_other_objects(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    ref = {"resource": "configmaps", "namespace": "default"}
    await post_events(
        client,
        [
            event(0, "create", objectRef=ref, responseObject=body(1)),  # name only in the body
            event(1, objectRef={**ref, "namespace": "other", "name": "settings"},
                  responseObject=body(9)),
            event(2, objectRef={**ref, "name": "settings"}, responseObject=body(2)),
            event(3, objectRef={**ref, "name": "settings"},
                  responseObject={"kind": "Status", "code": 409},
                  responseStatus={"metadata": {}, "code": 409}),
            event(4, "patch", objectRef={**ref, "name": "settings"}, responseObject=body(3)),
        ],
    )  # fmt: skip
    async with app.state.sessionmaker() as session:
        create, other, update, conflict, patch = await rows_of(session)
        assert (await queries.previous_version(session, patch)).id == update.id
        assert (await queries.previous_version(session, conflict)).id == update.id
        assert (await queries.previous_version(session, update)).id == create.id
        assert await queries.previous_version(session, create) is None
        assert await queries.previous_version(session, other) is None
        key = ObjectKey("test", "configmaps", "default", "settings")
        first, cursor = await queries.object_events(session, key, limit=3)
        assert [r.id for r in first] == [patch.id, conflict.id, update.id]
        rest, end = await queries.object_events(session, key, cursor=cursor, limit=3)
        assert [r.id for r in rest] == [create.id]
        assert end is None


async def test_cluster_scoped_object_history(client: httpx.AsyncClient, app: FastAPI) -> None:
    ref = {"resource": "clusterroles", "name": "viewer"}
    await post_events(
        client,
        [
            event(0, objectRef=ref, responseObject=body(1, "viewer")),
            event(1, objectRef={**ref, "namespace": "x"}, responseObject=body(2, "viewer")),
            event(2, objectRef=ref, responseObject=body(3, "viewer")),
        ],
    )
    async with app.state.sessionmaker() as session:
        rows, _ = await queries.object_events(
            session, ObjectKey("test", "clusterroles", None, "viewer")
        )
        assert [r.response_object["data"]["v"] for r in rows] == ["3", "1"]


async def test_export_stream_matches_the_timeline(client: httpx.AsyncClient, app: FastAPI) -> None:
    await post_events(client, [event(m % 7, "create" if m % 2 else "get") for m in range(25)])
    f = TimelineFilter(include_reads=False, limit=1000, cursor=None)
    async with app.state.sessionmaker() as session:
        timeline, _ = await queries.timeline(session, f)
        exported = [r async for r in queries.stream_export_rows(session, f, batch_size=4)]
    assert [r["id"] for r in exported] == [r.id for r in timeline]
    assert len(exported) == 12
    assert set(exported[0]) == set(queries.EXPORT_FIELDS)


async def test_calico_and_kubernetes_policies_of_one_name_stay_apart(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    def policy(minute: int, group: str) -> dict[str, Any]:
        ref = {"resource": "networkpolicies", "namespace": "default", "name": "allow-web",
               "apiGroup": group}  # fmt: skip
        return event(minute, objectRef=ref, responseObject=body(minute, "allow-web"))

    await post_events(
        client,
        [policy(1, "networking.k8s.io"), policy(2, "extensions"), policy(3, "projectcalico.org")],
    )
    async with app.state.sessionmaker() as session:
        k8s = ObjectKey("test", "networkpolicies", "default", "allow-web", "networking.k8s.io")
        rows, _ = await queries.object_events(session, k8s)
        assert sorted(r.api_group for r in rows) == ["extensions", "networking.k8s.io"]
        calico = queries.object_key((await rows_of(session))[-1])
        assert calico is not None
        assert calico.group == "projectcalico.org"
        rows, _ = await queries.object_events(session, calico)
        assert [r.api_group for r in rows] == ["projectcalico.org"]
        groups = {
            value: sorted(r.api_group for r in (await queries.timeline(session, f))[0])
            for value, f in (
                (v, TimelineFilter(resource=[v]))
                for v in ("networkpolicies", "networkpolicies.networking.k8s.io",
                          "networkpolicies.projectcalico.org")
            )
        }  # fmt: skip
    assert groups == {
        "networkpolicies": ["extensions", "networking.k8s.io", "projectcalico.org"],
        "networkpolicies.networking.k8s.io": ["extensions", "networking.k8s.io"],
        "networkpolicies.projectcalico.org": ["projectcalico.org"],
    }
