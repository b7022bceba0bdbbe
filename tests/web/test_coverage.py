"""Coverage: the summary kept at ingest against figures worked out from the fixture files."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.builders import audit_event
from tests.conftest import fixture_paths, query_all, requires_fixtures
from tests.fixture_oracle import MOVED_FROM_EXTENSIONS as MOVED
from tests.fixture_oracle import expected_from, unwrap
from tests.web.conftest import TemplateSpy

pytestmark = [pytest.mark.asyncio(loop_scope="session")]

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
FINAL = ("ResponseComplete", "Panic")


def when(value: str) -> datetime:
    head, _, frac = re.match(r"([^.Z+]+)(\.(\d+))?", value).group(1, 2, 3)  # type: ignore[union-attr]
    stamp = datetime.fromisoformat(head).replace(tzinfo=UTC)
    return stamp.replace(microsecond=int((frac or "0")[:6].ljust(6, "0")))


def group_of(event: dict[str, Any]) -> tuple[str, str, str]:
    ref = event.get("objectRef") or {}
    group = ref.get("apiGroup")
    if group is None and "/" in (ref.get("apiVersion") or ""):
        group = ref["apiVersion"].rpartition("/")[0]
    resource = ref.get("resource") or ""
    group = group or ""
    if group == "extensions":
        group = MOVED.get(resource, group)
    return group, resource, ref.get("subresource") or ""


def by_hand(paths: list[Path]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """From the files: per (group, resource, subresource, verb), requests by level (final
    stages only), bodies, other stages, last stage time."""
    figures: dict[tuple[str, str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"by_level": defaultdict(int), "req": 0, "resp": 0, "other": 0, "last": None}
    )
    for event in expected_from(paths).events.values():
        event = unwrap(event)
        group, resource, sub = group_of(event)
        row = figures[(group, resource, sub, event["verb"])]
        if event["stage"] in FINAL:
            row["by_level"][event.get("level") or "unknown"] += 1
            row["req"] += event.get("requestObject") is not None
            row["resp"] += event.get("responseObject") is not None
        else:
            row["other"] += 1
        at = when(event.get("stageTimestamp") or event["timestamp"])
        row["last"] = at if row["last"] is None else max(row["last"], at)
    return figures


async def post_all(client: httpx.AsyncClient, paths: list[Path], cluster: str) -> None:
    for path in paths:
        items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for start in range(0, len(items), 400):
            body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1"}
            response = await client.post(
                "/ingest",
                json={**body, "items": items[start : start + 400]},
                params={"cluster": cluster},
            )
            assert response.status_code == 200, response.text


@requires_fixtures
async def test_coverage_equals_figures_from_the_files(
    client: httpx.AsyncClient, database_url: str
) -> None:
    paths = fixture_paths()
    await post_all(client, paths, "fixtures")
    await post_all(client, paths[:2], "fixtures")  # retried batches: duplicates, not counted
    answer = (await client.get("/api/v1/coverage", params={"cluster": "fixtures"})).json()
    [cluster] = answer["clusters"]
    got = {(r["group"], r["resource"], r["subresource"], r["verb"]): r for r in cluster["seen"]}
    expected = by_hand(paths)
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        assert row["by_level"] == dict(want["by_level"]), key
        assert row["requests"] == sum(want["by_level"].values()), key
        assert (row["request_bodies"], row["response_bodies"]) == (want["req"], want["resp"]), key
        assert row["other_stages"] == want["other"], key
        assert datetime.fromisoformat(row["last_seen_at"]) == want["last"], key
        assert row["sources"] == ["webhook"]
    # Required pairs: verdicts follow from the same figures.
    for row in cluster["required"]:
        key = (row["group"], row["resource"], "", row["verb"])
        want = expected.get(key)
        if want is None or not want["by_level"]:
            assert row["status"] == "red", key
            assert (
                row["reasons"][0] in ("never seen in this window",)
                or "no ResponseComplete" in (row["reasons"][0])
            )
        elif set(want["by_level"]) != {"RequestResponse"}:
            assert row["status"] == "red", key
            assert row["reasons"][0].startswith("below the required RequestResponse"), key

    # The back-fill of the migration gives the same summary as the trigger did at ingest.
    summary = "SELECT * FROM coverage_hourly ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"
    before = query_all(database_url, summary)
    spec = importlib.util.spec_from_file_location(
        "maintain", MIGRATIONS / "2026-11-28-1951_maintain_coverage_hourly.py"
    )
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE coverage_hourly")
        conn.execute(migration.SUMMARY_SQL.format(rows="audit_event"))
    assert query_all(database_url, summary) == before


def change(verb: str, stage: str, level: str, n: int, **extra: Any) -> dict[str, Any]:
    ref = {"resource": "networkpolicies", "namespace": "a", "name": "p", "apiGroup": "extensions"}
    return audit_event(
        auditID=f"00000000-0000-4000-8000-{n:012d}",
        verb=verb,
        stage=stage,
        level=level,
        objectRef=ref,
        stageTimestamp=f"2026-11-20T10:{n % 60:02d}:00Z",
        **extra,
    )


async def test_stages_of_one_request_count_once_and_verdicts(
    client: httpx.AsyncClient, spy: TemplateSpy, web: httpx.AsyncClient
) -> None:
    body = {"kind": "NetworkPolicy", "metadata": {"name": "p"}}
    events = [
        change("update", "RequestReceived", "RequestResponse", 1, requestObject=body),
        change(
            "update",
            "ResponseComplete",
            "RequestResponse",
            1,
            requestObject=body,
            responseObject=body,
        ),
        change("patch", "ResponseComplete", "Metadata", 2),
        change("create", "RequestReceived", "RequestResponse", 3, requestObject=body),
    ]
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
    assert (await client.post("/ingest", json=batch, params={"cluster": "c1"})).status_code == 200
    report = (await client.get("/api/v1/coverage", params={"cluster": ["c1", "empty"]})).json()
    c1, empty = report["clusters"]
    assert empty["cluster"] == "empty"
    assert empty["is_stale"]
    assert {r["status"] for r in empty["required"]} == {"red"}
    rows = {(r["resource"], r["verb"]): r for r in c1["required"] if r["group"] != ""}
    update = rows[("networkpolicies", "update")]
    assert (update["requests"], update["other_stages"], update["status"]) == (1, 1, "ok")
    assert update["groups_seen"] == ["extensions"]
    assert rows[("networkpolicies", "patch")]["status"] == "red"
    assert rows[("networkpolicies", "patch")]["reasons"] == [
        "below the required RequestResponse: 1 at Metadata"
    ]
    create = rows[("networkpolicies", "create")]
    assert create["status"] == "red"
    assert "no ResponseComplete" in create["reasons"][0]
    assert rows[("networkpolicies", "delete")]["reasons"] == ["never seen in this window"]
    # The window is read in whole hours; an hour with nothing gives nothing.
    later = await client.get(
        "/api/v1/coverage", params={"cluster": "c1", "since": "2026-11-20T11:00:00Z"}
    )
    assert later.json()["clusters"][0]["seen"] == []
    bad = await client.get(
        "/api/v1/coverage",
        params={"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"},
    )
    assert bad.status_code == 422
    assert "since must be earlier than until" in bad.text
    page = await web.get("/coverage", params={"cluster": "c1"})
    assert page.status_code == 200
    assert spy.template == "coverage/page.html"
    assert spy.context["report"].clusters[0].cluster == "c1"
    assert "RED" in page.text
    assert "never seen in this window" in page.text
    partial = await web.get("/coverage", params={"window": "7d"}, headers={"HX-Request": "true"})
    assert spy.template == "coverage/_report.html"
    assert partial.status_code == 200


async def test_concurrent_overlapping_batches_count_exactly(
    client: httpx.AsyncClient, database_url: str
) -> None:
    # Eight batches, each overlapping its neighbours, sent at once: no deadlock, no double count.
    events = [change("update", "ResponseComplete", "RequestResponse", n) for n in range(80)]
    bodies = [
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events[i * 8 : i * 8 + 24]}
        for i in range(8)
    ]
    answers = await asyncio.gather(
        *(client.post("/ingest", json=b, params={"cluster": "c2"}) for b in bodies)
    )
    assert {a.status_code for a in answers} == {200}
    [(total,)] = query_all(
        database_url, "SELECT sum(requests) FROM coverage_hourly WHERE cluster = 'c2'"
    )
    [(stored,)] = query_all(database_url, "SELECT count(*) FROM audit_event WHERE cluster = 'c2'")
    assert total == stored == len(events)


async def test_amber_for_missing_response_bodies_and_stale_pairs(
    client: httpx.AsyncClient,
) -> None:
    ref = {"resource": "pods", "namespace": "a", "name": "p", "apiVersion": "v1"}
    body = {"kind": "Pod", "metadata": {"name": "p"}}
    events = [
        audit_event(verb="update", objectRef=ref, requestObject=body, responseObject=body,
                    stageTimestamp="2026-11-20T10:00:00Z"),
        audit_event(verb="update", objectRef=ref, requestObject=body,
                    stageTimestamp="2026-11-20T10:01:00Z"),
        audit_event(verb="delete", objectRef=ref, stageTimestamp="2026-11-18T09:00:00Z"),
        audit_event(verb="create", objectRef=ref, requestObject=body, responseObject=body,
                    stageTimestamp="2026-11-19T10:30:00Z"),
    ]  # fmt: skip
    batch = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
    assert (await client.post("/ingest", json=batch, params={"cluster": "c3"})).status_code == 200
    [cluster] = (await client.get("/api/v1/coverage", params={"cluster": "c3"})).json()["clusters"]
    pods = {r["verb"]: r for r in cluster["required"] if r["resource"] == "pods"}
    assert pods["update"]["status"] == "amber"
    assert pods["update"]["reasons"] == [
        "1 of 2 without a response body (dropped by the API server as too large?)"
    ]
    assert pods["delete"]["status"] == "amber"
    assert pods["delete"]["reasons"] == ["stale: nothing since 2026-11-18 09:00 UTC"]
    # 23.5 hours before the newest event: within COVERAGE_STALE_AFTER (24 h).
    assert pods["create"]["status"] == "ok"
    assert cluster["is_stale"]  # nothing from c3 in the last 24 hours of the real clock


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/coverage", {"until": "9999-12-31T23:30:00Z"}),
        ("/api/v1/coverage", {"since": "0001-01-01T00:00:00Z", "window": "30d"}),
        ("/api/v1/coverage", {"cluster": "a\x00b"}),
        ("/api/v1/coverage", {"window": "1y"}),
        (
            "/reports",
            {"cluster": "a\x00b", "since": "2026-01-01T00:00:00Z", "until": "2027-01-01T00:00:00Z"},
        ),
        (
            "/reports",
            {"cluster": "c", "since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"},
        ),
        ("/reports", {"since": "yesterday"}),
        ("/reports/report.csv", {"cluster": "c", "namespace": "n\x00"}),
    ],
)
async def test_hostile_parameters_get_answers_not_5xx(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "must" in response.text or "invalid" in response.text or "Input" in response.text
