"""The OpenAPI document tells the truth about errors: each documented error status that can be
provoked is, and its real body is validated against the documented schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.builders import audit_event
from tests.conftest import make_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

JSON = {"content-type": "application/json"}


def check(schema: dict[str, Any], value: Any, components: dict[str, Any], where: str) -> None:
    """A small JSON-schema check of the keywords FastAPI emits for our error models."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        check(components[name], value, components, where)
        return
    if "anyOf" in schema:
        problems = []
        for option in schema["anyOf"]:
            try:
                check(option, value, components, where)
                return
            except AssertionError as exc:
                problems.append(str(exc))
        raise AssertionError(f"{where}: no anyOf option matches: {problems}")
    kind = schema.get("type")
    types = {"string": str, "integer": int, "array": list, "object": dict, "null": type(None)}
    if kind is not None:
        assert isinstance(value, types[kind]), f"{where}: {value!r} is not {kind}"
    if kind == "object":
        properties = schema.get("properties", {})
        missing = set(schema.get("required", [])) - set(value)
        assert not missing, f"{where}: missing {missing}"
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(properties)
            assert not extra, f"{where}: undocumented {extra}"
        for key, item in value.items():
            if key in properties:
                check(properties[key], item, components, f"{where}.{key}")
    if kind == "array":
        for index, item in enumerate(value):
            check(schema["items"], item, components, f"{where}[{index}]")


async def assert_documented(
    http: httpx.AsyncClient, response: httpx.Response, path: str, method: str = "get"
) -> None:
    document = (await http.get("/openapi.json")).json()
    status = str(response.status_code)
    documented = document["paths"][path][method]["responses"]
    assert status in documented, f"{method} {path} answered {status}, documented {list(documented)}"
    schema = documented[status]["content"]["application/json"]["schema"]
    assert response.headers["content-type"].startswith("application/json")
    check(schema, response.json(), document["components"]["schemas"], f"{path} {status}")


async def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost")


async def test_open_mode_errors_match_the_document(client: httpx.AsyncClient) -> None:
    cases = [
        ("/api/v1/events", "get", {"params": {"cursor": "not-a-cursor"}}, 400),
        ("/api/v1/events", "get", {"params": {"limit": "0"}}, 422),
        ("/api/v1/events/facets", "get", {"params": {"since": "yesterday-ish"}}, 422),
        ("/events/export.csv", "get", {"params": {"verb": "x" * 600}}, 422),
        ("/api/v1/events/{event_id}", "get", {"url": "/api/v1/events/987654"}, 404),
        ("/api/v1/events/{event_id}", "get", {"url": "/api/v1/events/0"}, 422),
        ("/api/v1/quarantine", "get", {"params": {"limit": "5000"}}, 422),
        ("/api/v1/quarantine/{item_id}/raw", "get", {"url": "/api/v1/quarantine/55/raw"}, 404),
        ("/ingest", "post", {"content": b"not json", "headers": JSON}, 400),
        ("/ingest", "post", {"content": b"{}", "headers": {"content-type": "text/plain"}}, 415),
        ("/ingest", "post", {"content": b"{}", "headers": {**JSON, "origin": "http://evil"}}, 403),
    ]
    for path, method, request, status in cases:
        url = request.pop("url", path)
        response = await client.request(method.upper(), url, **request)
        assert response.status_code == status, (path, response.text)
        await assert_documented(client, response, path, method)


async def test_access_and_limit_errors_match_the_document(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        host="0.0.0.0",
        access_tokens="v=viewer",
        ingest_tokens="i=c1",
        ingest_max_body_bytes=1024,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app), await client_for(app) as http:
        viewer = {"authorization": "Bearer v"}
        for path, headers, status in [
            ("/api/v1/events", {}, 401),
            ("/events/export.ndjson", viewer, 403),
            ("/api/v1/quarantine", viewer, 403),
        ]:
            response = await http.get(path, headers=headers)
            assert response.status_code == status
            await assert_documented(http, response, path)
        body = json.dumps(audit_event()).encode()
        for headers, params, content, status in [
            (JSON, {}, body, 401),
            ({**JSON, "authorization": "Bearer i"}, {"cluster": "c2"}, body, 403),
            ({**JSON, "authorization": "Bearer i"}, {}, b" " * 2048, 413),
        ]:
            response = await http.post("/ingest", headers=headers, params=params, content=content)
            assert response.status_code == status
            await assert_documented(http, response, "/ingest", "post")


async def test_database_down_errors_match_the_document(tmp_path: Path) -> None:
    # Nothing listens on port 1: every query fails as when PostgreSQL is down.
    app = create_app(make_settings("postgresql://postgres@127.0.0.1:1/none", tmp_path))
    async with app.router.lifespan_context(app), await client_for(app) as http:
        for path in ("/api/v1/events", "/api/v1/quarantine"):
            response = await http.get(path)
            assert response.status_code == 503
            assert response.headers["retry-after"]
            await assert_documented(http, response, path)
        response = await http.post("/ingest", headers=JSON, content=json.dumps(audit_event()))
        assert response.status_code == 503
        await assert_documented(http, response, "/ingest", "post")
