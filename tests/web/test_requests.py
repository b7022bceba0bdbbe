"""One request, one row: the stage flag kept at ingest, and every count, filter and export
that counts requests (timeline, histogram, facets, CSV, API per=request); user prefix and group
filters; the custom range as people type it."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command

from app.audit import queries, rollups
from app.migrate import alembic_config, upgrade_to_head
from tests.builders import audit_event
from tests.conftest import query_all
from tests.pg import TestPostgres
from tests.web.conftest import TemplateSpy

pytestmark = pytest.mark.asyncio(loop_scope="session")

STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
BEFORE_FLAG = "5c1d2e7a9b10"  # the revision before is_request_row


def stage_event(audit_id: str, stage: str, second: int = 0, **overrides: Any) -> dict[str, Any]:
    at = datetime(2026, 11, 20, 10, tzinfo=UTC) + timedelta(seconds=second)
    offset = STAGES.index(stage) * 0.001
    event = audit_event(
        auditID=audit_id,
        stage=stage,
        verb=overrides.pop("verb", "update"),
        stageTimestamp=(at + timedelta(seconds=offset)).isoformat(),
        requestReceivedTimestamp=at.isoformat(),
        objectRef=overrides.pop(
            "objectRef", {"resource": "configmaps", "namespace": "default", "name": "cm"}
        ),
        **overrides,
    )
    if stage != "ResponseComplete":
        event.pop("responseStatus", None)
    return event


async def ingest(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, int]:
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
    response = await client.post("/ingest", json=body, params={"cluster": "test"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def flagged(database_url: str) -> dict[str, list[str]]:
    """Per audit ID, the stages that carry is_request_row."""
    rows = query_all(
        database_url,
        "SELECT audit_id, stage FROM audit_event WHERE is_request_row ORDER BY audit_id, stage",
    )
    heads: dict[str, list[str]] = {}
    for audit_id, stage in rows:
        heads.setdefault(audit_id, []).append(stage)
    return heads


async def test_the_most_complete_stage_is_flagged_whatever_the_arrival_order(
    client: httpx.AsyncClient, database_url: str
) -> None:
    a, b, c = "req-a", "req-b", "req-c"
    # Out of order: the complete stage first, the received stage later (must not take over).
    await ingest(client, [stage_event(a, "ResponseComplete")])
    await ingest(client, [stage_event(a, "RequestReceived")])
    # In order, one batch per stage; then a Panic outranks everything.
    for stage in ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"):
        await ingest(client, [stage_event(b, stage)])
    # All stages in one batch, shuffled, with a duplicate of the best one.
    batch = [stage_event(c, s) for s in ("ResponseComplete", "RequestReceived")]
    result = await ingest(client, [*batch, batch[0]])
    assert result == {"stored": 2, "duplicates": 1, "quarantined": 0}
    # A retry of everything changes nothing.
    retry = await ingest(client, [stage_event(a, "RequestReceived"), *batch])
    assert retry["stored"] == 0
    assert flagged(database_url) == {a: ["ResponseComplete"], b: ["Panic"], c: ["ResponseComplete"]}
    total = query_all(database_url, "SELECT count(*) FROM audit_event")[0][0]
    assert total == 2 + 4 + 2  # storage stays lossless: every stage is kept


async def test_concurrent_batches_leave_exactly_one_row_per_request(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ids = [f"req-{i}" for i in range(120)]
    events = [stage_event(audit_id, stage) for audit_id in ids for stage in STAGES[:3]]
    random.Random(7).shuffle(events)
    # Six concurrent batches, each holding stages of many of the same requests.
    batches = [events[i::6] for i in range(6)]
    results = await asyncio.gather(*(ingest(client, batch) for batch in batches))
    assert sum(r["stored"] for r in results) == len(events)
    assert flagged(database_url) == {audit_id: ["ResponseComplete"] for audit_id in ids}


async def test_large_batches_lock_buckets_and_stay_exact(
    client: httpx.AsyncClient, database_url: str
) -> None:
    # More requests than lock buckets: the batch takes bucket locks instead of request locks,
    # while a small batch (request locks) stores other stages of the same requests.
    ids = [str(uuid.uuid4()) for _ in range(700)]
    big = [stage_event(audit_id, "RequestReceived") for audit_id in ids]
    small = [stage_event(audit_id, "ResponseComplete") for audit_id in ids[:200]]
    await asyncio.gather(ingest(client, big), ingest(client, small))
    heads = flagged(database_url)
    assert len(heads) == 700
    assert all(heads[i] == ["ResponseComplete"] for i in ids[:200])
    assert all(heads[i] == ["RequestReceived"] for i in ids[200:])


async def test_migration_flags_existing_rows(postgres: TestPostgres) -> None:
    url = postgres.create_database("audit_timeline_request_row_backfill")
    config = alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, BEFORE_FLAG)
    columns = "cluster, audit_id, stage, verb, stage_at, source, raw"
    with psycopg.connect(url) as conn:
        for audit_id, stage in [
            ("x", "RequestReceived"),
            ("x", "ResponseComplete"),
            ("y", "RequestReceived"),
            ("z", "ResponseStarted"),
            ("z", "Panic"),
            ("z", "RequestReceived"),
        ]:
            conn.execute(
                f"INSERT INTO audit_event ({columns}) VALUES"  # noqa: S608
                " ('c', %s, %s, 'update', now(), 'file', '{}')",
                (audit_id, stage),
            )
    await asyncio.to_thread(upgrade_to_head, url)
    assert flagged(url) == {"x": ["ResponseComplete"], "y": ["RequestReceived"], "z": ["Panic"]}


def dataset() -> tuple[list[dict[str, Any]], int]:
    """Changes with known stage duplicates: (events, number of change requests)."""
    events: list[dict[str, Any]] = []
    requests = 0
    for i in range(30):
        audit_id = f"change-{i}"
        stages = STAGES[: 1 + i % 3]  # 1, 2 or 3 stages per request
        verb = ("update", "patch", "delete")[i % 3]
        ref = {"resource": "configmaps", "namespace": f"ns-{i % 2}", "name": f"cm-{i}"}
        events += [stage_event(audit_id, s, i, verb=verb, objectRef=ref) for s in stages]
        requests += 1
    # Reads are not counted by the default (changes only) view.
    events += [stage_event(f"read-{i}", s, i, verb="get") for i in range(5) for s in STAGES[:3:2]]
    return events, requests


async def test_timeline_counts_requests_not_stages(
    client: httpx.AsyncClient, spy: TemplateSpy, web: httpx.AsyncClient
) -> None:
    events, requests = dataset()
    await ingest(client, events)
    page = await web.get("/", params={"limit": "1000"})
    assert page.status_code == 200
    assert spy.context["filters"].per == "request"
    assert len(spy.context["rows"]) == requests == 30
    assert f'<strong id="match-count">{requests}</strong> matching requests' in page.text
    facets = spy.context["facets"]
    await web.get("/histogram", params={"limit": "1000"})
    assert sum(b.count for b in spy.context["buckets"]) == requests
    assert sum(n for _, n in facets["verb"]) == requests
    assert dict(facets["namespace"]) == {"ns-0": 15, "ns-1": 15}
    await web.get("/", params={"limit": "1000"})
    # Each row shows the most complete stage and lists the request's stages.
    for row in spy.context["rows"]:
        index = int(row.event.audit_id.split("-")[1])
        expected = STAGES[: 1 + index % 3]
        assert row.event.stage == expected[-1]
        assert [stage for stage, _ in row.stages] == list(expected)
    # Raw stages on request.
    await web.get("/", params={"per": "stage", "limit": "1000"})
    assert len(spy.context["rows"]) == 30 + 30
    await web.get("/", params={"per": "stage", "stage": "RequestReceived", "limit": "1000"})
    assert {r.event.stage for r in spy.context["rows"]} == {"RequestReceived"}
    assert len(spy.context["rows"]) == 30
    # The export link of the page exports requests too: as many CSV rows as the count.
    await web.get("/")
    link = page.text.split('href="/events/export.csv?')[1].split('"')[0].replace("&amp;", "&")
    exported = await web.get("/events/export.csv?" + link)
    rows = list(csv.DictReader(io.StringIO(exported.text.removeprefix("\ufeff"))))
    assert len(rows) == requests
    assert len({row["audit_id"] for row in rows}) == requests


async def test_detail_lists_every_stage_of_the_request(
    client: httpx.AsyncClient, spy: TemplateSpy, web: httpx.AsyncClient
) -> None:
    await ingest(client, [stage_event("one", s) for s in STAGES[:3]])
    await web.get("/")
    row = spy.context["rows"][0]
    page = await web.get(f"/changes/{row.event.id}")
    assert [stage for stage, _ in spy.context["row"].stages] == list(STAGES[:3])
    for stage, stage_id in row.stages:
        if stage_id != row.event.id:
            assert f'href="/changes/{stage_id}">{stage}</a>' in page.text


async def test_api_per_request_mode(client: httpx.AsyncClient) -> None:
    events, requests = dataset()
    await ingest(client, events)
    stored = await client.get("/api/v1/events", params={"limit": "1000"})
    assert len(stored.json()["items"]) == len(events)  # default: stored stage-events
    per = await client.get("/api/v1/events", params={"limit": "1000", "per": "request"})
    items = per.json()["items"]
    assert len(items) == requests + 5
    assert len({(i["cluster"], i["audit_id"]) for i in items}) == len(items)
    assert {i["stage"] for i in items if i["audit_id"].startswith("read-")} == {"ResponseComplete"}
    # Paging per request: pages of 7 add up to the same requests, no repeats.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "7", "per": "request", **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/api/v1/events", params=params)).json()
        seen += [i["audit_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(i["audit_id"] for i in items)
    # per=request with stage selects by the request's most complete stage.
    only_received = await client.get(
        "/api/v1/events", params={"per": "request", "stage": "RequestReceived", "limit": "1000"}
    )
    assert {i["audit_id"] for i in only_received.json()["items"]} == {
        f"change-{i}" for i in range(0, 30, 3)
    }
    csv_text = (await client.get("/api/v1/events/export.csv", params={"per": "request"})).text
    assert len(list(csv.DictReader(io.StringIO(csv_text.removeprefix("\ufeff"))))) == len(items)
    bad = await client.get("/api/v1/events", params={"per": "requests"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["param"] == "per"
    bad_stage = await client.get("/api/v1/events", params={"stage": "Done"})
    assert bad_stage.status_code == 422
    assert "RequestReceived" in bad_stage.json()["detail"][0]["message"]


def user_event(username: str, groups: list[str], **overrides: Any) -> dict[str, Any]:
    return audit_event(user={"username": username, "groups": groups}, verb="update", **overrides)


async def test_user_prefix_and_group_filters(
    client: httpx.AsyncClient, spy: TemplateSpy, web: httpx.AsyncClient
) -> None:
    sa = ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
    await ingest(
        client,
        [
            user_event("system:serviceaccount:kube-system:replicaset-controller", sa),
            user_event("system:serviceaccount:kube-system:node-controller", sa),
            user_event("system:serviceaccount:kube-systemx:impostor", ["system:serviceaccounts"]),
            user_event("system:serviceaccount:default:app", ["system:serviceaccounts"]),
            user_event("admin", ["system:masters", "system:authenticated"]),
            user_event(
                "alice",
                ["system:authenticated"],
                impersonatedUser={"username": "bob", "groups": ["system:masters"]},
            ),
            user_event("100%_real", ["x"]),
        ],
    )

    async def users(**params: str) -> set[str]:
        response = await client.get("/api/v1/events", params=params)
        assert response.status_code == 200, response.text
        return {i["user"]["username"] for i in response.json()["items"]}

    assert await users(user="system:serviceaccount:kube-system:*") == {
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:node-controller",
    }
    assert await users(user="system:serviceaccount:*") == {
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:node-controller",
        "system:serviceaccount:kube-systemx:impostor",
        "system:serviceaccount:default:app",
    }
    # LIKE wildcards in the prefix are literal characters.
    assert await users(user="100%*") == {"100%_real"}
    assert await users(user="1_0*") == set()
    # Prefix and exact values combine (OR); a prefix also matches the impersonated user.
    assert await users(user=["admin", "b*"]) == {"admin", "alice"}  # type: ignore[arg-type]
    assert await users(group="system:masters") == {"admin", "alice"}
    assert await users(group="system:serviceaccounts:kube-system") == {
        "system:serviceaccount:kube-system:replicaset-controller",
        "system:serviceaccount:kube-system:node-controller",
    }
    bad = await client.get("/api/v1/events", params={"user": "*"})
    assert bad.status_code == 422
    # The dashboard: the quick view answers "what did kube-system's service accounts change".
    page = await web.get("/")
    preset = "/?user=system%3Aserviceaccount%3Akube-system%3A%2A&amp;window=24h"
    assert f'href="{preset}"' in page.text
    await web.get("/", params={"user": "system:serviceaccount:kube-system:*"})
    assert len(spy.context["rows"]) == 2
    assert dict(spy.context["facets"]["group"])["system:serviceaccounts:kube-system"] == 2
    await web.get("/", params={"group": "system:masters"})
    assert {r.event.user.username for r in spy.context["rows"]} == {"admin", "alice"}


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20 10:00", datetime(2026, 11, 20, 10, tzinfo=UTC)),
        ("2026-11-20T10:00:05", datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)),
        ("2026-11-20 11:00:05+01:00", datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)),
        ("2026-11-20T10:00:05.5Z", datetime(2026, 11, 20, 10, 0, 5, 500000, tzinfo=UTC)),
        (" 2026-11-20 10:00:05 UTC ", datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)),
    ],
)
async def test_custom_range_accepts_what_people_type(
    web: httpx.AsyncClient, spy: TemplateSpy, typed: str, expected: datetime
) -> None:
    page = await web.get("/", params={"since": typed})
    assert page.status_code == 200
    assert spy.context["errors"] == {}
    assert spy.context["filters"].since == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-31 10:00"}, "until"),
        ({"since": "2026-11-21", "until": "2026-11-20"}, "until"),
        ({"since": "2026-11-20 25:00"}, "since"),
    ],
)
async def test_a_wrong_range_is_shown_inline_and_the_rest_applies(
    web: httpx.AsyncClient, spy: TemplateSpy, params: dict[str, str], field: str
) -> None:
    page = await web.get("/", params={**params, "verb": "patch"}, headers={"HX-Request": "true"})
    assert page.status_code == 200
    assert list(spy.context["errors"]) == [field]
    assert spy.context["filters"].verb == ["patch"]  # the rest of the URL still applies
    assert 'aria-invalid="true"' in page.text
    assert f'value="{params[field]}"' in page.text  # what was typed stays to be fixed


async def test_other_bad_values_are_left_out_with_a_notice(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    page = await web.get("/", params={"status": "broken", "colour": "blue", "verb": "delete"})
    assert page.status_code == 200
    assert set(spy.context["errors"]) == {"status", "colour"}
    assert spy.context["errors"]["colour"] == "unknown parameter"
    assert spy.context["filters"].verb == ["delete"]
    assert "<code>status=broken</code>" in page.text


async def test_rows_show_the_time_of_day_and_plural_counts(
    client: httpx.AsyncClient, web: httpx.AsyncClient
) -> None:
    await ingest(client, [stage_event("single", "ResponseComplete")])
    page = await web.get("/")
    assert "2026-11-20 10:00:00</time>" in page.text
    assert '<small class="age">' in page.text
    assert '<strong id="match-count">1</strong> matching request (changes only)' in page.text
    empty = await web.get("/", params={"verb": "delete", "window": "15m"})
    assert "Nothing was recorded in this time range for these filters.</p>" in empty.text
    changes = await web.get("/", params={"namespace": "elsewhere"})
    assert (
        "Nothing was recorded for these filters among changes (create, update, patch, delete)."
        in changes.text
    )


async def test_api_takes_typed_times_as_utc_and_counts_new_facets(
    client: httpx.AsyncClient,
) -> None:
    await ingest(client, [stage_event(f"t-{i}", "ResponseComplete", i * 60) for i in range(5)])
    params = {"since": "2026-11-20 10:02", "until": "2026-11-20T11:03:30+01:00"}
    items = (await client.get("/api/v1/events", params=params)).json()["items"]
    assert sorted(i["audit_id"] for i in items) == ["t-2", "t-3"]
    facets = (await client.get("/api/v1/events/facets", params={"per": "request"})).json()
    assert facets["facets"]["stage"] == [{"value": "ResponseComplete", "count": 5}]
    assert facets["facets"]["group"] == [{"value": "system:authenticated", "count": 5}]
    assert facets["sampled"] == {}


async def test_group_counts_are_exact_or_say_they_cover_the_newest_only(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = [user_event(f"old-{i}", ["old-team"]) for i in range(3)]
    new = [user_event(f"new-{i}", ["new-team"]) for i in range(2)]
    for i, event in enumerate([*old, *new]):
        event["stageTimestamp"] = f"2026-11-20T10:00:0{i}Z"
    await ingest(client, [*old, *new])
    facets = (await client.get("/api/v1/events/facets")).json()
    assert facets["sampled"] == {}
    assert facets["facets"]["group"] == [
        {"value": "old-team", "count": 3},
        {"value": "new-team", "count": 2},
    ]
    # More matching events than are counted row by row: the newest only, and said so.
    monkeypatch.setattr(rollups, "GROUP_FACET_SAMPLE", 3)
    facets = (await client.get("/api/v1/events/facets")).json()
    assert facets["sampled"]["group"] == {"newest": 3, "matching": 5}
    assert facets["facets"]["group"] == [
        {"value": "new-team", "count": 2},
        {"value": "old-team", "count": 1},
    ]
    page = await client.get("/", params={"per": "stage"})
    assert "Counts over the newest 3 of 5 matching stage-events only." in page.text


@pytest.mark.parametrize("max_user_scans", [16, 1])
async def test_user_filter_pages_match_the_plain_or(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, max_user_scans: int
) -> None:
    # Each (column, user) is its own ordered scan, merged; past MAX_USER_SCANS the filter is one
    # plain scan. Either way the pages are the newest matches, each row once.
    monkeypatch.setattr(queries, "MAX_USER_SCANS", max_user_scans)
    rng = random.Random(3)
    names = ["ann", "anna", "andy", "bob", "carl"]
    events = []
    for i in range(120):
        extra: dict[str, Any] = {}
        if i % 4 == 0:
            extra["impersonatedUser"] = {"username": rng.choice(names)}
        events.append(
            user_event(
                rng.choice(names),
                ["g"],
                stageTimestamp=f"2026-11-20T10:{i // 60:02d}:{i % 60:02d}Z",
                **extra,
            )
        )
    await ingest(client, events)

    def expected(match: Any) -> list[str]:
        hits = [
            e for e in events
            if match(e["user"]["username"]) or match(e.get("impersonatedUser", {}).get("username"))
        ]  # fmt: skip
        return [e["auditID"] for e in sorted(hits, key=lambda e: e["stageTimestamp"])][::-1]

    for users, match in (
        (["an*"], lambda u: u is not None and u.startswith("an")),
        (["bob", "carl"], lambda u: u in ("bob", "carl")),
        (["ann", "c*"], lambda u: u == "ann" or (u or "").startswith("c")),
    ):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"user": users, "limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/api/v1/events", params=params)).json()
            seen += [item["audit_id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected(match), users
