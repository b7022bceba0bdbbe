"""Every real fixture through POST /ingest as EventList batches: counts, quarantine, lossless."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import fixture_paths, query_all, requires_fixtures
from tests.fixture_oracle import expected_from

pytestmark = [requires_fixtures, pytest.mark.asyncio(loop_scope="session")]

BATCH = 400  # --audit-webhook-batch-max-size default


def batches(path: Path) -> list[dict[str, object]]:
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items[i : i + BATCH]}
        for i in range(0, len(items), BATCH)
    ]


async def post_file(client: httpx.AsyncClient, path: Path) -> dict[str, int]:
    totals = {"stored": 0, "duplicates": 0, "quarantined": 0}
    for body in batches(path):
        response = await client.post("/ingest", json=body, params={"cluster": "fixtures"})
        assert response.status_code == 200, response.text
        for key, value in response.json().items():
            totals[key] += value
    return totals


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
async def test_fixture_counts_quarantine_and_reconstruction(
    client: httpx.AsyncClient, database_url: str, path: Path
) -> None:
    expected = expected_from(path)
    totals = await post_file(client, path)
    assert totals == {
        "stored": len(expected.events),
        "duplicates": expected.duplicates,
        "quarantined": expected.quarantined,
    }
    rows = query_all(
        database_url,
        "SELECT audit_id, stage, id FROM audit_event WHERE cluster = 'fixtures'",
    )
    assert {(a, s) for a, s, _ in rows} == set(expected.events)
    # Lossless: the API's reconstruction is JSON-equal to the first occurrence in the file.
    for audit_id, stage, event_id in rows:
        detail = (await client.get(f"/api/v1/events/{event_id}")).json()
        original = expected.events[(audit_id, stage)]
        if detail["event"] != original:
            assert detail["event"].keys() == original.keys()  # only redaction may differ
            assert "[redacted:hmac-sha256:" in json.dumps(detail["event"])
    quarantined = query_all(database_url, "SELECT raw, error FROM quarantined_item")
    assert len(quarantined) == len(expected.distinct_quarantined)
    stored_conflicts = [error for _, error in quarantined if "already stored" in error]
    assert len(stored_conflicts) == len(expected.distinct_conflicts)


async def test_reposting_every_batch_stores_nothing_new(client: httpx.AsyncClient) -> None:
    first = {p.name: await post_file(client, p) for p in fixture_paths()}
    for path in fixture_paths():
        again = await post_file(client, path)
        assert again["stored"] == 0
        assert again["duplicates"] == first[path.name]["stored"] + first[path.name]["duplicates"]


async def test_concurrent_overlapping_posts_store_each_event_once(
    client: httpx.AsyncClient, database_url: str
) -> None:
    path = next(p for p in fixture_paths() if p.name.startswith("audit2rbac"))
    items = [json.loads(line) for line in path.read_text().splitlines()]
    # Eight senders, each posting an overlapping window of the same log, half of them in
    # reverse order (the order in which two inserts take unique-index locks must not matter).
    windows = [items[i * 60 : i * 60 + 300] for i in range(8)]
    windows = [w if i % 2 else w[::-1] for i, w in enumerate(windows)]
    responses = await asyncio.gather(
        *(
            client.post(
                "/ingest",
                json={"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1", "items": w},
            )
            for w in windows
        )
    )
    assert all(r.status_code == 200 for r in responses)
    stored = sum(r.json()["stored"] for r in responses)
    distinct = {(e["auditID"], e["stage"]) for w in windows for e in w}
    assert stored == len(distinct)
    count = query_all(
        database_url, "SELECT count(*), count(DISTINCT (audit_id, stage)) FROM audit_event"
    )
    assert count == [(len(distinct), len(distinct))]
