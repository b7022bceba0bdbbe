"""Secrets in items that are not valid JSON never reach the database in clear.

Four damage shapes (truncated, NaN, a stray byte, 3,000-deep nesting) of a Secret event, each
as an EventList item, an NDJSON line and a line of an imported file; then every column of every
table is read back as text (what a dump holds) and searched for the planted values.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.db import make_engine, make_sessionmaker
from app.ingest.file_import import import_files
from app.main import create_app
from tests.builders import audit_event, secret_event
from tests.conftest import make_settings, query_all

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLANTED = "PlantedPassw0rd-7f3a9c"
PLANTED_TOKEN = "planted-bearer-token-5e21"
PLANTED_APPLIED = "planted-last-applied-19bd"


def planted_secret() -> dict[str, object]:
    event = secret_event({"password": base64.b64encode(PLANTED.encode()).decode()})
    body = event["requestObject"]
    assert isinstance(body, dict)
    body["stringData"] = {"token": PLANTED_TOKEN}
    body["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": json.dumps(
            {"kind": "Secret", "stringData": {"x": PLANTED_APPLIED}}
        )
    }
    return event


def truncated() -> bytes:
    """Cut just after the planted values (as a log line cut by a full disk)."""
    text = json.dumps(planted_secret())
    return text[: text.index(PLANTED_APPLIED) + len(PLANTED_APPLIED) + 3].encode()


def with_nan() -> bytes:
    event = planted_secret()
    event["annotations"] = {"replicas": "@NAN@"}
    return json.dumps(event).replace('"@NAN@"', "NaN").encode()


def with_stray_byte() -> bytes:
    text = json.dumps(planted_secret()).encode()
    return text[:-1] + b" \xff}"


def too_deep() -> bytes:
    event = planted_secret()
    event["nested"] = "@DEEP@"  # after the bodies, as a damaged tail
    return json.dumps(event).replace('"@DEEP@"', "[" * 3000 + "]" * 3000).encode()


DAMAGES: dict[str, Callable[[], bytes]] = {
    "truncated": truncated,
    "nan": with_nan,
    "stray-byte": with_stray_byte,
    "deep": too_deep,
}


def planted_forms() -> list[bytes]:
    forms = []
    for value in (PLANTED, PLANTED_TOKEN, PLANTED_APPLIED):
        forms += [value.encode(), value.encode().hex().encode(), base64.b64encode(value.encode())]
    return forms


def dump_database(url: str) -> bytes:
    """Every column of every table as text, bytea both as hex and as escaped bytes."""
    columns = query_all(
        url,
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public'",
    )
    chunks = []
    for table, column, data_type in columns:
        expressions = [f'"{column}"::text']
        if data_type == "bytea":
            expressions.append(f"encode(\"{column}\", 'escape')")
        for expression in expressions:
            for (value,) in query_all(url, f'SELECT {expression} FROM "{table}"'):
                if value is not None:
                    chunks.append(value.encode("utf-8", "surrogateescape"))
    return b"\n".join(chunks)


def assert_nothing_planted(url: str) -> None:
    dump = dump_database(url)
    assert dump, "the dump read nothing"
    for form in planted_forms():
        assert form not in dump, form


async def reveal(client: httpx.AsyncClient, database_url: str) -> list[bytes]:
    ids = [row[0] for row in query_all(database_url, "SELECT id FROM quarantined_item")]
    revealed = []
    for item_id in ids:
        response = await client.get(f"/api/v1/quarantine/{item_id}/raw")
        assert response.status_code == 200
        revealed.append(response.content)
    return revealed


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_event_list_item(damage: str, client: httpx.AsyncClient, database_url: str) -> None:
    good = json.dumps(audit_event()).encode()
    body = b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + good + b","
    body += DAMAGES[damage]() + b"]}"
    response = await client.post(
        "/ingest", content=body, headers={"content-type": "application/json"}
    )
    if damage == "truncated":
        # A cut item leaves the list unbalanced: the whole body is refused, nothing kept.
        assert response.status_code == 400, response.text
    else:
        assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}
        listed = (await client.get("/api/v1/quarantine")).json()["items"]
        assert listed[0]["is_sealed"] is True
        assert listed[0]["is_redacted"] is True
        assert any(PLANTED_TOKEN.encode() in raw for raw in await reveal(client, database_url))
    assert_nothing_planted(database_url)


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_ndjson_line(
    damage: str, client: httpx.AsyncClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = DAMAGES[damage]()
    body = b"\n".join([json.dumps(audit_event()).encode(), damaged, b""])
    response = await client.post(
        "/ingest", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert response.json() == {"stored": 1, "duplicates": 0, "quarantined": 1}
    item = (await client.get("/api/v1/quarantine")).json()["items"][0]
    assert item["is_sealed"] is True
    if damage != "stray-byte":  # a bare byte outside strings: no clear copy at all
        assert "[redacted:hmac-sha256:" in item["raw"]
        assert "kubectl.kubernetes.io/last-applied-configuration" in item["raw"]
    assert [damaged] == await reveal(client, database_url)
    assert "quarantine.raw_revealed" in [r.getMessage() for r in caplog.records]
    assert_nothing_planted(database_url)


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_file_import_line(
    damage: str, app: FastAPI, database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "kube-audit.log"
    log.write_bytes(b"\n".join([json.dumps(audit_event()).encode(), DAMAGES[damage](), b""]))
    engine = make_engine(database_url, pool_size=1)
    try:
        result = await import_files(
            make_sessionmaker(engine), [log], cluster="files", redactor=app.state.redactor
        )
    finally:
        await engine.dispose()
    assert (result.stored, result.quarantined) == (1, 1)
    assert_nothing_planted(database_url)


async def test_sealed_bytes_need_the_key_they_were_sealed_with(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    body = b"\n".join([json.dumps(audit_event()).encode(), with_nan(), b""])
    headers = {"content-type": "application/x-ndjson"}
    assert (await client.post("/ingest", content=body, headers=headers)).status_code == 200
    (item_id,) = [row[0] for row in query_all(database_url, "SELECT id FROM quarantined_item")]
    other = create_app(
        make_settings(database_url, tmp_path, redaction_key="another-key-0123456789")
    )
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            response = await http.get(f"/api/v1/quarantine/{item_id}/raw")
    assert response.status_code == 409
    assert "REDACTION_KEY" in response.json()["error"]
