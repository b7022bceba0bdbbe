"""POST /ingest: body shapes, auth, limits, quarantine, and secrets that must never be stored."""

from __future__ import annotations

import gzip
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.main import create_app
from tests.builders import audit_event, event_list, secret_event
from tests.conftest import make_settings, query_all

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def post(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return await client.post("/ingest", content=content, headers=headers, **kwargs)


def stored_ids(database_url: str) -> set[str]:
    return {row[0] for row in query_all(database_url, "SELECT audit_id FROM audit_event")}


async def test_event_list_v1_is_stored_and_counted(
    client: httpx.AsyncClient, database_url: str
) -> None:
    events = [audit_event() for _ in range(3)]
    response = await post(client, event_list(events))
    assert response.status_code == 200
    assert response.json() == {"stored": 3, "duplicates": 0, "quarantined": 0}
    assert stored_ids(database_url) == {e["auditID"] for e in events}


async def test_v1beta1_single_event_array_and_ndjson(
    client: httpx.AsyncClient, database_url: str
) -> None:
    beta = [audit_event(apiVersion="audit.k8s.io/v1beta1") for _ in range(2)]
    single, array, lines = (
        audit_event(),
        [audit_event(), audit_event()],
        [audit_event() for _ in range(3)],
    )
    ndjson = ("\n".join(json.dumps(e) for e in lines) + "\n").encode()
    assert (await post(client, event_list(beta, "audit.k8s.io/v1beta1"))).json()["stored"] == 2
    assert (await post(client, single)).json()["stored"] == 1
    assert (await post(client, array)).json()["stored"] == 2
    response = await post(client, ndjson, headers={"content-type": "application/x-ndjson"})
    assert response.json() == {"stored": 3, "duplicates": 0, "quarantined": 0}
    expected = {e["auditID"] for e in [*beta, single, *array, *lines]}
    assert stored_ids(database_url) == expected


async def test_gzip_body(client: httpx.AsyncClient, database_url: str) -> None:
    events = [audit_event() for _ in range(5)]
    body = gzip.compress(json.dumps(event_list(events)).encode())
    response = await post(client, body, headers={"content-encoding": "gzip"})
    assert response.json()["stored"] == 5


async def test_mixed_batch_stores_good_and_quarantines_bad(
    client: httpx.AsyncClient, database_url: str
) -> None:
    good = [audit_event(), audit_event()]
    bad: list[Any] = [
        "not an event",
        {"kind": "Event", "stage": "ResponseComplete"},  # no auditID
        audit_event(stageTimestamp="last tuesday"),
        audit_event(requestObject={"note": "nul \u0000 inside"}),
        [1, 2, 3],
    ]
    response = await post(client, event_list([good[0], *bad, good[1]]))
    assert response.status_code == 200
    assert response.json() == {"stored": 2, "duplicates": 0, "quarantined": 5}
    assert stored_ids(database_url) == {e["auditID"] for e in good}
    rows = query_all(database_url, "SELECT origin, error, raw FROM quarantined_item ORDER BY id")
    errors = [error for _, error, _ in rows]
    assert [origin for origin, _, _ in rows] == [f"items[{i}]" for i in range(1, 6)]
    assert "expected an audit Event object" in errors[0]
    assert "auditID: missing" in errors[1]
    assert "stageTimestamp" in errors[2]
    assert "NUL" in errors[3]
    assert json.loads(bytes(rows[0][2])) == "not an event"
    # A retried batch reports the same counts but keeps each bad item once.
    again = await post(client, event_list([good[0], *bad, good[1]]))
    assert again.json() == {"stored": 0, "duplicates": 2, "quarantined": 5}
    assert query_all(database_url, "SELECT count(*) FROM quarantined_item") == [(5,)]


async def test_ndjson_bad_lines_are_quarantined_byte_for_byte(
    client: httpx.AsyncClient, database_url: str
) -> None:
    good = audit_event()
    body = b'{"truncated": \n' + json.dumps(good).encode() + b"\n\xff\xfe not utf8\n"
    response = await post(client, body)
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 2}
    rows = query_all(database_url, "SELECT id, raw, raw_sealed FROM quarantined_item ORDER BY id")
    # Bytes that cannot be scanned for secrets are kept only encrypted; admins get them back.
    assert [(bytes(raw), sealed is not None) for _, raw, sealed in rows] == [
        (b'{"truncated":', False),
        (b"", True),
    ]
    revealed = [(await client.get(f"/api/v1/quarantine/{row[0]}/raw")).content for row in rows]
    assert revealed == [b'{"truncated":', b"\xff\xfe not utf8"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"this is not json", "not valid JSON"),
        (b'{"kind": "PodList", "items": []}', "kind 'PodList' is not accepted"),
        (
            b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1alpha1", "items": []}',
            "apiVersion 'audit.k8s.io/v1alpha1' is not supported",
        ),
        (b'{"kind": "EventList", "items": {"a": 1}}', "items must be an array"),
        (b"42", "must be a JSON object"),
    ],
)
async def test_malformed_envelopes_are_400_with_a_reason(
    client: httpx.AsyncClient, database_url: str, body: bytes, message: str
) -> None:
    response = await post(client, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert query_all(database_url, "SELECT count(*) FROM quarantined_item") == [(0,)]


async def test_bad_gzip_is_400(client: httpx.AsyncClient) -> None:
    response = await post(client, b"plain text", headers={"content-encoding": "gzip"})
    assert response.status_code == 400
    assert "not gzip" in response.json()["error"]


@pytest_asyncio.fixture
async def small_limit_client(database_url: str, tmp_path: Path) -> Any:
    app = create_app(make_settings(database_url, tmp_path, ingest_max_body_bytes=4096))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def test_body_limit_is_413_for_plain_and_gzip_bombs(
    small_limit_client: httpx.AsyncClient,
) -> None:
    big = json.dumps(event_list([audit_event() for _ in range(20)])).encode()
    assert len(big) > 4096
    response = await post(small_limit_client, big)
    assert response.status_code == 413
    assert "exceeds the limit of 4096 bytes" in response.json()["error"]
    bomb = gzip.compress(b" " * 2_000_000)
    assert len(bomb) < 4096
    response = await post(small_limit_client, bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413


async def test_default_limit_accepts_a_legal_10_mib_batch(client: httpx.AsyncClient) -> None:
    padding = "x" * 26_500
    events = [audit_event(requestObject={"data": padding}) for _ in range(400)]
    body = json.dumps(event_list(events)).encode()
    assert len(body) > 10 * 1024 * 1024
    response = await post(client, body)
    assert response.status_code == 200
    assert response.json()["stored"] == 400


@pytest_asyncio.fixture
async def token_app(database_url: str, tmp_path: Path) -> Any:
    app = create_app(
        make_settings(database_url, tmp_path, ingest_tokens="tok-a=cluster-a,tok-b=cluster-b")
    )
    async with app.router.lifespan_context(app):
        yield app


async def test_bearer_tokens_map_to_clusters(token_app: FastAPI, database_url: str) -> None:
    transport = httpx.ASGITransport(app=token_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        body = event_list([audit_event()])
        missing = await post(client, body)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = await post(client, body, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        other = await post(
            client, body, headers={"authorization": "Bearer tok-a"}, params={"cluster": "cluster-b"}
        )
        assert other.status_code == 403
        assert "cluster-a" in other.json()["error"]
        ok = await post(client, body, headers={"authorization": "Bearer tok-b"})
        assert ok.status_code == 200
    assert query_all(database_url, "SELECT cluster FROM audit_event") == [("cluster-b",)]


async def test_same_event_in_two_clusters_is_two_events(
    client: httpx.AsyncClient, database_url: str
) -> None:
    event = audit_event()
    for cluster in ("east", "west", "east"):
        await post(client, event_list([event]), params={"cluster": cluster})
    assert sorted(query_all(database_url, "SELECT cluster FROM audit_event")) == [
        ("east",),
        ("west",),
    ]


async def test_invalid_cluster_parameter(client: httpx.AsyncClient) -> None:
    response = await post(client, event_list([]), params={"cluster": "../../etc"})
    assert response.status_code == 400
    assert "invalid cluster name" in response.json()["error"]


async def test_secret_values_appear_nowhere(
    client: httpx.AsyncClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "cGFzc3dvcmQtdGhhdC1tdXN0LW5vdC1sZWFr"
    caplog.set_level(logging.DEBUG)
    events = [
        secret_event({"password": secret}),
        # Invalid (bad time) so it goes to the quarantine: still redacted there.
        secret_event({"password": secret}, stageTimestamp="never"),
    ]
    response = await post(client, event_list(events))
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}
    dump = query_all(
        database_url,
        "SELECT string_agg(t::text, '') FROM audit_event t"
        " UNION ALL SELECT string_agg(convert_from(raw, 'UTF8'), '') FROM quarantined_item",
    )
    assert all(secret not in (text or "") for (text,) in dump)
    assert "[redacted:hmac-sha256:" in dump[0][0]
    assert query_all(database_url, "SELECT is_redacted FROM quarantined_item") == [(True,)]
    listing = await client.get("/api/v1/events")
    event_id = listing.json()["items"][0]["id"]
    detail = await client.get(f"/api/v1/events/{event_id}")
    assert secret not in listing.text
    assert secret not in detail.text
    assert set(detail.json()["response_object"]["data"]) == {"password"}
    assert secret not in caplog.text


async def test_metrics_count_outcomes(client: httpx.AsyncClient) -> None:
    event = audit_event()
    await post(client, event_list([event, event, "junk"]))
    metrics = (await client.get("/metrics")).text
    assert 'audit_timeline_ingested_items_total{outcome="stored",source="webhook"} 1.0' in metrics
    assert (
        'audit_timeline_ingested_items_total{outcome="duplicate",source="webhook"} 1.0' in metrics
    )
    assert (
        'audit_timeline_ingested_items_total{outcome="quarantined",source="webhook"} 1.0' in metrics
    )


async def test_probes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok", "database": "up"}


async def test_reused_audit_id_with_different_content_is_kept_apart(
    client: httpx.AsyncClient, database_url: str
) -> None:
    first = audit_event(user={"username": "alice"})
    # Same identity (clients may set the Audit-ID header), different request: must not vanish.
    impostor = {**first, "user": {"username": "mallory"}, "verb": "delete"}
    in_batch = await post(client, event_list([first, first, impostor]))
    assert in_batch.json() == {"stored": 1, "duplicates": 1, "quarantined": 1}
    later = await post(client, event_list([impostor, first]))
    assert later.json() == {"stored": 0, "duplicates": 1, "quarantined": 1}
    assert query_all(database_url, "SELECT username FROM audit_event") == [("alice",)]
    rows = query_all(database_url, "SELECT raw, error, origin FROM quarantined_item ORDER BY id")
    # The same impostor twice is one quarantined item.
    assert [json.loads(bytes(raw))["user"]["username"] for raw, _, _ in rows] == ["mallory"]
    assert "already stored (event 1) with different content" in rows[0][1]


async def test_byte_order_mark_and_unsupported_encoding(client: httpx.AsyncClient) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(event_list([audit_event()])).encode()
    assert (await post(client, body)).json()["stored"] == 1
    response = await post(client, body, headers={"content-encoding": "br"})
    assert response.status_code == 415
    assert "send gzip or no encoding" in response.json()["error"]


async def test_many_tiny_bad_items_are_all_quarantined(
    client: httpx.AsyncClient, database_url: str
) -> None:
    # 20,000 distinct junk items: more rows than one INSERT may carry parameters for.
    response = await post(client, list(range(20_000)))
    assert response.json() == {"stored": 0, "duplicates": 0, "quarantined": 20_000}
    assert query_all(database_url, "SELECT count(*) FROM quarantined_item") == [(20_000,)]


async def test_awkward_json_values_survive_the_round_trip(client: httpx.AsyncClient) -> None:
    body = {
        "big": 2**80,
        "small": -(2**70),
        "float": 1.5e300,
        "unicode": "ünïcødé ✓ 𝄞 \u2028",
        "escapes": 'tab\tnewline\nquote"backslash\\',
        "nested": [[[{"k": None}]]],
        "empty": {},
    }
    event = audit_event(requestObject=body)
    response = await post(client, event_list([event]))
    assert response.json()["stored"] == 1
    listing = (await client.get("/api/v1/events")).json()
    detail = (await client.get(listing["items"][0]["url"])).json()
    assert detail["request_object"]["big"] == 2**80
    # jsonb keeps numbers as exact decimals: 1.5e300 comes back as the same number, written out.
    assert Decimal(detail["request_object"].pop("float")) == Decimal("1.5e300")
    del detail["event"]["requestObject"]["float"], event["requestObject"]["float"]
    assert detail["event"] == event
