"""`poll --once` over the real fixtures spread across every Calico index generation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.audit.normalize import reconstruct_event
from app.metrics import Metrics
from tests.conftest import query_all, requires_fixtures
from tests.poller.es_data import (
    DAILY,
    ROLLOVER_1,
    ROLLOVER_2,
    SHARED,
    TENANT,
    bulk_index,
    calico_documents,
    create_indices,
    expected_keys,
    fixture_events,
    generated,
    load_calico,
)
from tests.poller.helpers import new_poller, poll_once, poller_settings, stored_keys

pytestmark = [pytest.mark.es, pytest.mark.asyncio, requires_fixtures]


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def test_poll_once_stores_every_generation_with_its_cluster(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    placed = calico_documents(fixture_events())
    load_calico(es_url, placed)
    expected = expected_keys(placed)
    metrics = Metrics()

    result = await poll_once(poller_settings(database_url, tmp_path, es_url), metrics=metrics)

    keys = stored_keys(database_url)
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert {k[0] for k in keys} == {"alpha", "beta", "gamma", "delta", "epsilon"}
    ee = sum(1 for p in placed if p.cluster is None)
    assert result.read == len(placed) - ee  # ee documents are not even read
    assert result.stored == len(expected)
    assert result.quarantined == 0
    assert result.stored + result.duplicates == result.read
    assert metrics.poller_documents.labels("stored")._value.get() == len(expected)
    assert query_all(database_url, "SELECT count(*) FROM quarantined_item") == [(0,)]
    indices = {
        r[0] for r in query_all(database_url, "SELECT source_meta->'es'->>'index' FROM audit_event")
    }
    assert indices == {DAILY, ROLLOVER_1, ROLLOVER_2, TENANT, SHARED}
    sources = {r[0] for r in query_all(database_url, "SELECT DISTINCT source FROM audit_event")}
    assert sources == {"elasticsearch"}


async def test_stored_event_is_the_event_and_calico_fields_are_metadata(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = fixture_events()
    placed = calico_documents(events)
    load_calico(es_url, placed)
    await poll_once(poller_settings(database_url, tmp_path, es_url))

    rows = query_all(
        database_url,
        "SELECT cluster, raw, request_object, response_object, source_meta FROM audit_event"
        " WHERE NOT is_redacted",
    )
    # The sanitised Elastic fixtures share one auditID: compare with every candidate.
    docs_by_key: dict[tuple[object, ...], list[dict[str, object]]] = {}
    for p in placed:
        docs_by_key.setdefault((p.cluster, p.source["auditID"], p.source["stage"]), []).append(
            p.source
        )
    originals: dict[tuple[object, ...], list[str]] = {}
    for e in events:
        originals.setdefault((e["auditID"], e["stage"]), []).append(json.dumps(e, sort_keys=True))
    checked = {"v1_timestamp": 0, "v1beta1_timestamp": 0}
    for cluster, raw, request_object, response_object, meta in rows:
        event = reconstruct_event(raw, request_object, response_object)
        key = (event["auditID"], event["stage"])
        assert json.dumps(event, sort_keys=True) in originals[key]
        assert meta["es"]["index"].startswith(("tigera_secure_ee_audit_kube.", "calico_auditlogs."))
        assert meta["es"]["id"]
        added = meta.get("calico", {})
        assert "name" in added  # Calico's object name, always added (may be null)
        candidates = docs_by_key[(cluster, *key)]
        assert any({k: doc[k] for k in added} == added for doc in candidates)
        if "timestamp" in added:
            checked["v1_timestamp"] += 1
        if "timestamp" in event and event.get("apiVersion") != "audit.k8s.io/v1":
            # v1beta1's own field stayed in the Event (the comparison above proves it).
            checked["v1beta1_timestamp"] += 1
    assert checked["v1_timestamp"] > 0
    assert checked["v1beta1_timestamp"] > 0


async def test_second_cycle_rereads_the_overlap_and_stores_nothing_new(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    load_calico(es_url, calico_documents(fixture_events()[:120]))
    settings = poller_settings(database_url, tmp_path, es_url)
    first = await poll_once(settings)
    second = await poll_once(settings)
    assert first.stored > 0
    assert second.stored == 0
    assert second.duplicates == second.read - second.skipped


async def test_late_documents_are_caught_by_cursor_or_overlap(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = fixture_events()
    placed = calico_documents(events[:60] + events[-180:])
    load_calico(es_url, placed)
    settings = poller_settings(database_url, tmp_path, es_url, es_overlap=600.0)
    await poll_once(settings)
    cursors = dict(query_all(database_url, "SELECT key, cursor_at FROM poll_checkpoint"))
    stage_cursor = next(v for k, v in cursors.items() if k.endswith(":stageTimestamp"))

    def late(event: dict[str, object], audit_id: str, stage_at: str) -> dict[str, object]:
        return {**event, "auditID": audit_id, "stageTimestamp": stage_at, "name": None}

    template = next(e for e in events if e.get("apiVersion") == "audit.k8s.io/v1")
    inside = (stage_cursor.timestamp() - 120) * 1000  # older than the cursor, inside the overlap
    outside = (stage_cursor.timestamp() - 3600) * 1000  # older than the overlap window
    docs = [
        # Newer pipeline: an old event arriving now has a fresh generated_time.
        (ROLLOVER_2, {**late(template, "late-generated", iso(outside)), "cluster": "beta",
                      "generated_time": generated(100_000)}),
        (DAILY, late(template, "late-in-overlap", iso(inside))),
        (DAILY, late(template, "late-beyond-overlap", iso(outside))),
    ]  # fmt: skip
    bulk_index(es_url, docs)
    result = await poll_once(settings)

    ids = {r[0] for r in query_all(database_url, "SELECT audit_id FROM audit_event")}
    assert "late-generated" in ids
    assert "late-in-overlap" in ids
    # Documented limit: without generated_time, only the overlap window is re-read.
    assert "late-beyond-overlap" not in ids
    assert result.stored == 2


async def test_overlap_is_reread_on_the_first_cycle_and_then_once_per_period(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = fixture_events()
    load_calico(es_url, calico_documents(events[:60] + events[-180:]))
    settings = poller_settings(
        database_url, tmp_path, es_url, es_overlap=600.0, es_overlap_every=2, es_poll_interval=10
    )
    poller = new_poller(settings)
    now = [1000.0]
    poller.clock = lambda: now[0]  # the overlap period is 2 x 10 s of this clock
    try:
        first = await poller.run_once()  # the first cycle: with overlap
        assert first.stored > 0
        cursors = dict(query_all(database_url, "SELECT key, cursor_at FROM poll_checkpoint"))
        stage_cursor = next(v for k, v in cursors.items() if k.endswith(":stageTimestamp"))
        template = next(e for e in events if e.get("apiVersion") == "audit.k8s.io/v1")
        late_at = iso((stage_cursor.timestamp() - 120) * 1000)
        bulk_index(es_url, [(DAILY, {**template, "auditID": "late", "stageTimestamp": late_at})])
        now[0] += 10
        quiet = await poller.run_once()  # 10 s later: from the checkpoint only
        assert quiet.stored == 0
        assert quiet.read < first.read
        now[0] += 10
        caught = await poller.run_once()  # 20 s after the last overlap cycle: the overlap again
        assert caught.stored == 1
    finally:
        await poller.source.close()
        await poller.engine.dispose()
    ids = {r[0] for r in query_all(database_url, "SELECT audit_id FROM audit_event")}
    assert "late" in ids
