"""Hostile input against POST /ingest, GET /api/v1/events and the intake path.

Each test states what must hold for one hostile input: a clear 4xx, or the bad item alone in
the quarantine (redacted), never a 500 or a lost neighbour.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.audit import queries
from app.audit.intake import prepare_batch
from app.ingest.file_import import import_files
from app.poller.documents import read_hit
from tests.builders import audit_event, event_list, secret_event
from tests.conftest import query_all

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "aHVudGVyMg=="  # base64 of a password that must never reach the database


async def post(client: httpx.AsyncClient, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return await client.post("/ingest", content=content, headers=headers, **kwargs)


def event_json(**overrides: Any) -> str:
    return json.dumps(audit_event(**overrides))


def with_literal(placeholder_value: str, literal: str, **overrides: Any) -> str:
    """An event whose requestObject is a JSON literal json.dumps cannot produce (1e999, ...)."""
    text = event_json(requestObject={"x": placeholder_value})
    return text.replace(json.dumps(placeholder_value), literal)


def counts(database_url: str) -> tuple[int, int]:
    events = query_all(database_url, "SELECT count(*) FROM audit_event")[0][0]
    quarantined = query_all(database_url, "SELECT count(*) FROM quarantined_item")[0][0]
    return events, quarantined


def every_stored_byte(database_url: str) -> str:
    rows = query_all(
        database_url,
        "SELECT raw::text, request_object::text, response_object::text FROM audit_event",
    )
    quarantined = query_all(database_url, "SELECT raw FROM quarantined_item")
    return json.dumps(rows) + "".join(bytes(r[0]).decode("utf-8", "replace") for r in quarantined)


# --- One bad item must not fail its valid neighbours --------------------------------------


@pytest.mark.parametrize("shape", ["array", "ndjson"])
async def test_overflowing_float_is_quarantined_alone(
    client: httpx.AsyncClient, database_url: str, shape: str
) -> None:
    good, bad = event_json(), with_literal("@", "1e999")
    body = f"[{good},{bad}]" if shape == "array" else f"{good}\n{bad}\n"
    response = await post(client, body.encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}


async def test_object_index_overflow_is_quarantined_alone(
    client: httpx.AsyncClient, database_url: str
) -> None:
    rng = random.Random(0)  # incompressible: PostgreSQL cannot shrink the index entry

    def wide(n: int) -> str:
        return "".join(chr(rng.randint(0x10000, 0x1FFFF)) for _ in range(n))

    bad = audit_event(objectRef={"resource": wide(253), "namespace": wide(253), "name": wide(253)})
    body = json.dumps(event_list([audit_event(), bad]), ensure_ascii=False).encode()
    response = await post(client, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}


async def test_too_deep_item_in_event_list_is_quarantined_alone(
    client: httpx.AsyncClient, database_url: str
) -> None:
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    bad = event_json(requestObject={"x": 1}).replace('{"x": 1}', deep)
    body = f'{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{event_json()},{bad}]}}'
    response = await post(client, body.encode())
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    assert counts(database_url) == (1, 1)


async def test_huge_integer_in_one_item_does_not_refuse_the_batch(
    client: httpx.AsyncClient, database_url: str
) -> None:
    bad = with_literal("@", "9" * 5000)
    response = await post(client, f"[{event_json()},{bad}]".encode())
    assert response.status_code == 200, response.text
    assert response.json()["stored"] >= 1


async def test_too_deep_ndjson_line_is_quarantined_alone(
    client: httpx.AsyncClient, database_url: str
) -> None:
    deep = '{"a":' * 3000 + "1" + "}" * 3000
    bad = event_json(requestObject={"x": 1}).replace('{"x": 1}', deep)
    response = await post(client, f"{event_json()}\n{bad}\n".encode())
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}


FIELD_POSITIONS = {
    "userAgent": {"userAgent": "kubectl{}"},
    "user.username": {"user": {"username": "alice{}"}},
    "user.groups": {"user": {"username": "alice", "groups": ["g{}"]}},
    "objectRef.namespace": {
        "objectRef": {"resource": "pods", "namespace": "ns{}", "name": "p", "apiVersion": "v1"}
    },
    "auditID": {"auditID": "id-{}"},
    "sourceIPs": {"sourceIPs": ["10.0.0.1{}"]},
    "annotation value": {"annotations": {"authorization.k8s.io/decision": "allow{}"}},
    "annotation key": {"annotations": {"k{}": "v"}},
    "body key": {"requestObject": {"metadata": {"labels": {"k{}": "v"}}}},
    "responseStatus.message": {"responseStatus": {"code": 200, "message": "m{}"}},
}


@pytest.mark.parametrize("bad_char", ["\x00", "\ud800"], ids=["NUL", "lone-surrogate"])
@pytest.mark.parametrize("position", list(FIELD_POSITIONS))
async def test_unstorable_characters_anywhere_quarantine_only_their_item(
    client: httpx.AsyncClient, database_url: str, position: str, bad_char: str
) -> None:
    overrides = json.loads(json.dumps(FIELD_POSITIONS[position]).replace("{}", "@@"))
    text = event_json(**overrides).replace("@@", json.dumps(bad_char)[1:-1])
    response = await post(client, f"[{event_json()},{text}]".encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}


# --- Secrets stay secret, in the quarantine too -------------------------------------------


def _secret_with(problem: str) -> str:
    event = secret_event({"password": SECRET})
    if problem == "NUL":
        event["requestObject"]["metadata"]["annotations"] = {"note": "a\x00b"}
    elif problem == "lone-surrogate":
        event["userAgent"] = "kubectl\ud800"
    else:  # deeper than intake.MAX_DEPTH
        deep: dict[str, Any] = {"a": 1}
        for _ in range(250):
            deep = {"a": deep}
        event["requestObject"]["extra"] = deep
    return json.dumps(event)


@pytest.mark.parametrize("problem", ["NUL", "lone-surrogate", "too-deep"])
@pytest.mark.parametrize("shape", ["event-list", "ndjson"])
async def test_quarantined_secret_event_is_redacted(
    client: httpx.AsyncClient, database_url: str, problem: str, shape: str
) -> None:
    item = _secret_with(problem)
    body = (
        f'{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{item}]}}'
        if shape == "event-list"
        else f"{item}\n{event_json()}\n"
    )
    response = await post(client, body.encode())
    assert response.json()["quarantined"] == 1
    assert SECRET not in every_stored_byte(database_url)


def _secret_patch(body: Any, **ref: Any) -> dict[str, Any]:
    object_ref = {"resource": "secrets", "namespace": "a", "name": "b", "apiVersion": "v1", **ref}
    return audit_event(verb="patch", objectRef=object_ref, requestObject=body)


REDACTED_SHAPES = {
    "merge patch stringData": _secret_patch({"stringData": {"p": SECRET}}),
    "json patch test op": _secret_patch([{"op": "test", "path": "/data/p", "value": SECRET}]),
    "json patch escaped key": _secret_patch(
        [{"op": "add", "path": "/data/a~1b~0c", "value": SECRET}]
    ),
    "json patch whole data": _secret_patch(
        [{"op": "add", "path": "/data", "value": {"p": SECRET}}]
    ),
    "json patch stringData": _secret_patch(
        [{"op": "add", "path": "/stringData", "value": {"p": SECRET}}]
    ),
    "json patch root": _secret_patch(
        [{"op": "replace", "path": "", "value": {"data": {"p": SECRET}}}]
    ),
    "json patch last-applied": _secret_patch(
        [
            {
                "op": "add",
                "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                "value": SECRET,
            }
        ]
    ),
    "json patch metadata": _secret_patch(
        [
            {
                "op": "add",
                "path": "/metadata",
                "value": {
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": SECRET}
                },
            }
        ]
    ),
    "apiGroup core": _secret_patch({"data": {"p": SECRET}}, apiGroup="core"),
    "SecretList items without kind": audit_event(
        verb="deletecollection",
        objectRef={"resource": "secrets", "namespace": "a", "apiVersion": "v1"},
        responseObject={"kind": "SecretList", "items": [{"data": {"p": SECRET}}]},
    ),
    "Secret inside a List on configmaps": audit_event(
        objectRef={"resource": "configmaps", "namespace": "a", "name": "b", "apiVersion": "v1"},
        requestObject={"kind": "List", "items": [{"kind": "Secret", "data": {"p": SECRET}}]},
    ),
    "TokenRequest": audit_event(
        objectRef={"resource": "serviceaccounts", "subresource": "token", "namespace": "a"},
        responseObject={"kind": "TokenRequest", "status": {"token": SECRET}},
    ),
}


@pytest.mark.parametrize("shape", list(REDACTED_SHAPES))
async def test_secret_shapes_are_redacted_before_storage(
    client: httpx.AsyncClient, database_url: str, shape: str
) -> None:
    response = await post(client, event_list([REDACTED_SHAPES[shape]]))
    assert response.json()["stored"] == 1
    assert SECRET not in every_stored_byte(database_url)


# --- Query parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("param", ["namespace", "user", "verb", "cluster", "resource", "q"])
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/events/export.csv"])
async def test_nul_in_a_filter_is_a_4xx(client: httpx.AsyncClient, path: str, param: str) -> None:
    response = await client.get(path, params={param: "a\x00b"})
    assert 400 <= response.status_code < 500
    assert param in response.json()["error"]


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
async def test_time_outside_the_utc_range_is_a_4xx(
    client: httpx.AsyncClient, param: str, value: str
) -> None:
    response = await client.get("/api/v1/events", params={param: value})
    assert response.status_code == 422
    assert param in response.json()["error"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"])
async def test_extreme_utc_times_are_accepted(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get("/api/v1/events", params={"until": value})
    assert response.status_code == 200


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_cursor_with_an_id_beyond_bigint_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/events", params={"cursor": _cursor("v1:1:" + "9" * 23)})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "cursor",
    [
        "not-base64!",
        "é",
        _cursor("v2:1:1"),
        _cursor("v1:1"),
        _cursor("v1:1:2:3"),
        _cursor("v1:1e3:1"),
        _cursor("v1:-99999999999999999999:1"),
        _cursor("v1:999999999999999999:1"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_tampered_cursor_is_a_400(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/api/v1/events", params={"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["error"]


async def test_like_wildcards_in_q_match_literally(client: httpx.AsyncClient) -> None:
    names = ["a%b", "axb", "a_b", "a\\b"]
    events = [
        audit_event(objectRef={"resource": "pods", "namespace": "n", "name": n}) for n in names
    ]
    assert (await post(client, event_list(events))).json()["stored"] == 4
    for q, expected in [("%", ["a%b"]), ("_", ["a_b"]), ("\\", ["a\\b"])]:
        items = (await client.get("/api/v1/events", params={"q": q})).json()["items"]
        assert [i["name"] for i in items] == expected


async def test_unknown_and_too_many_parameters_are_422(client: httpx.AsyncClient) -> None:
    unknown = await client.get("/api/v1/events", params={"namespaces": "a"})
    assert unknown.status_code == 422
    assert "namespaces" in unknown.json()["error"]
    many = await client.get("/api/v1/events", params=[("namespace", str(i)) for i in range(51)])
    assert many.status_code == 422
    assert "namespace" in many.json()["error"]


@pytest.mark.parametrize("event_id", ["0", "-1", str(2**63), "1e3", "abc"])
async def test_bad_event_id_is_422(client: httpx.AsyncClient, event_id: str) -> None:
    assert (await client.get(f"/api/v1/events/{event_id}")).status_code == 422


async def test_timeline_page_survives_an_event_at_the_end_of_time(
    client: httpx.AsyncClient,
) -> None:
    # Not a request time: quarantined, so it cannot break time arithmetic on the pages.
    late = audit_event(stageTimestamp="9999-12-31T23:59:59.999999Z")
    last = audit_event(stageTimestamp="9000-12-31T23:59:59.999999Z")
    assert (await post(client, event_list([late, last]))).json() == {
        "stored": 1,
        "duplicates": 0,
        "quarantined": 1,
    }
    assert (await client.get("/api/v1/events")).status_code == 200
    assert (await client.get("/", headers={"accept": "text/html"})).status_code == 200


# --- Timestamps and response codes --------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "stored"),
    [
        ("0001-01-01T00:00:00Z", False),  # Go's zero time: not a request time
        ("9999-12-31T23:59:59.999999Z", False),
        ("1970-01-01T00:00:00Z", True),
        ("9000-12-31T23:59:59.999999Z", True),
        ("2026-01-01T05:30:00+05:30", True),
        ("2026-01-01T00:00:00.123456789012Z", True),
        ("0001-01-01T00:00:00+00:01", False),  # before year 1 in UTC
        ("9999-12-31T23:59:59-00:01", False),  # after year 9999 in UTC
        ("2016-12-31T23:59:60Z", False),  # leap second
        ("2026-01-01T00:00:00+24:00", False),
        ("0000-01-01T00:00:00Z", False),
        ("2026-02-30T00:00:00Z", False),
        ("2026-01-01T00:00:00", False),  # no offset
    ],
)
async def test_timestamp_edges(
    client: httpx.AsyncClient, database_url: str, stamp: str, stored: bool
) -> None:
    response = await post(client, event_list([audit_event(stageTimestamp=stamp)]))
    assert response.status_code == 200
    assert response.json()["stored"] == int(stored)
    assert response.json()["quarantined"] == int(not stored)


@pytest.mark.parametrize(
    ("code", "stored"),
    [
        (0, True),
        (999, True),
        (1000, False),
        (-1, False),
        (200.0, False),
        (True, False),
        ("200", False),
        (2**70, False),
    ],
)
async def test_response_code_bounds(client: httpx.AsyncClient, code: Any, stored: bool) -> None:
    event = audit_event(responseStatus={"code": code})
    response = await post(client, event_list([event, audit_event()]))
    assert response.json()["stored"] == 1 + int(stored)


# --- Transport: encodings, lengths, item counts ------------------------------------------


async def test_multi_member_gzip_is_read_whole_or_refused(
    client: httpx.AsyncClient, database_url: str
) -> None:
    first = gzip.compress((event_json() + "\n").encode())
    second = gzip.compress((event_json() + "\n").encode())
    response = await post(client, first + second, headers={"content-encoding": "gzip"})
    assert response.status_code == 400 or response.json()["stored"] == 2


async def test_stacked_content_encodings_are_refused(
    client: httpx.AsyncClient, database_url: str
) -> None:
    body = gzip.compress(gzip.compress(json.dumps(event_list([audit_event()])).encode()))
    assert (await post(client, body, headers={"content-encoding": "gzip, gzip"})).status_code == 415
    # Two Content-Encoding headers: only the first is applied; what remains is binary, which
    # is refused or quarantined (split as NDJSON at its newline bytes), never lost.
    duplicated = [("content-encoding", "gzip")] * 2 + [("content-type", "application/json")]
    response = await client.post("/ingest", content=body, headers=duplicated)
    assert response.status_code == 400 or response.json()["quarantined"] > 0
    assert query_all(database_url, "SELECT count(*) FROM audit_event") == [(0,)]


async def test_huge_declared_content_length_is_413_before_reading(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, b"{}", headers={"content-length": "9" * 30})
    assert response.status_code == 413


async def test_absurd_item_count_is_refused_up_front(client: httpx.AsyncClient) -> None:
    body = b"[" + b",".join([b"0"] * 200_000) + b"]"
    response = await post(client, body)
    assert response.status_code in (400, 413)


# --- Other intake paths -------------------------------------------------------------------


async def test_es_hit_with_a_nul_in_its_id_does_not_fail_the_batch(app: FastAPI) -> None:
    index = "tigera_secure_ee_audit_kube.c1.20260101"
    hits = [
        {"_index": index, "_id": "ok", "_source": audit_event()},
        {"_index": index, "_id": "x\x00y", "_source": audit_event()},
    ]
    docs = [read_hit(h, cluster_from="auto", default_cluster="c") for h in hits]
    items = [d.item for d in docs if d is not None]
    batch = prepare_batch(items, cluster="c1", source="elasticsearch", redactor=app.state.redactor)
    async with app.state.sessionmaker.begin() as session:
        result = await queries.store_batch(
            session,
            events=batch.events,
            quarantined=batch.quarantined,
            cluster="c1",
            source="elasticsearch",
        )
    assert result.stored + result.quarantined == 2


async def test_import_of_a_file_with_a_non_utf8_name(app: FastAPI, tmp_path: Path) -> None:
    path = tmp_path / os.fsdecode(b"kube-audit-\xff.log")
    path.write_bytes(b"not json\n" + event_json().encode() + b"\n")
    result = await import_files(
        app.state.sessionmaker, [path], cluster="c", redactor=app.state.redactor
    )
    assert (result.stored, result.quarantined) == (1, 1)
