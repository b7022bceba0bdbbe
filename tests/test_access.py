"""Access modes: open only on loopback; bearer tokens with roles; a trusted auth proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.main import create_app
from tests.builders import audit_event, event_list
from tests.conftest import make_settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

# httpx's ASGITransport presents every request as coming from 127.0.0.1.
TOKENS = "v-token=viewer,e-token=exporter,a-token=admin"
READ = ["/", "/api/v1/events", "/events/facets", "/api/v1/events/1"]
EXPORT = ["/events/export.csv", "/api/v1/events/export.ndjson"]
ADMIN = ["/api/v1/quarantine"]
ALWAYS_OPEN = ["/healthz", "/readyz", "/metrics", "/openapi.json"]


@pytest_asyncio.fixture
async def make_client(database_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    apps: list[Any] = []

    async def build(**overrides: Any) -> httpx.AsyncClient:
        app = create_app(make_settings(database_url, tmp_path, **overrides))
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        apps.append(context)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://localhost"
        )
        apps.append(client)
        return client

    yield build
    for item in reversed(apps):
        await item.__aexit__(None, None, None)


async def status_of(client: httpx.AsyncClient, url: str, **headers: str) -> int:
    return (await client.get(url, headers=headers)).status_code


async def test_off_loopback_without_access_settings_nothing_is_readable(make_client: Any) -> None:
    client = await make_client(host="0.0.0.0")
    for url in READ + EXPORT + ADMIN:
        response = await client.get(url)
        assert response.status_code == 401, url
        assert response.headers["www-authenticate"] == "Bearer"
    assert "authentication required" in (await client.get("/api/v1/events")).json()["error"]
    for url in ALWAYS_OPEN:
        assert await status_of(client, url) == 200, url


async def test_roles_of_bearer_tokens(make_client: Any) -> None:
    client = await make_client(host="0.0.0.0", access_tokens=TOKENS)

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    for url in ("/", "/api/v1/events", "/events/facets"):
        assert await status_of(client, url, **bearer("v-token")) == 200, url
        assert await status_of(client, url, **bearer("wrong")) == 401, url
    for url in EXPORT:
        assert await status_of(client, url, **bearer("v-token")) == 403, url
        assert await status_of(client, url, **bearer("e-token")) == 200, url
    forbidden = await client.get(ADMIN[0], headers=bearer("e-token"))
    assert forbidden.status_code == 403
    assert "needs the admin role" in forbidden.json()["error"]
    assert await status_of(client, ADMIN[0], **bearer("a-token")) == 200


async def test_auth_proxy_header_only_from_the_proxy(make_client: Any) -> None:
    trusted = await make_client(host="0.0.0.0", auth_proxy_addresses="127.0.0.0/8")
    assert await status_of(trusted, "/api/v1/events", **{"X-Forwarded-User": "alice"}) == 200
    assert await status_of(trusted, "/events/export.csv", **{"X-Forwarded-User": "alice"}) == 200
    assert await status_of(trusted, "/api/v1/events") == 401  # no user header
    assert await status_of(trusted, ADMIN[0], **{"X-Forwarded-User": "alice"}) == 403
    # oauth2-proxy may pass its own ID token along: not ours, so the proxy header decides.
    passed_on = {"X-Forwarded-User": "alice", "Authorization": "Bearer proxy-id-token"}
    assert await status_of(trusted, "/api/v1/events", **passed_on) == 200
    elsewhere = await make_client(host="0.0.0.0", auth_proxy_addresses="10.1.2.3")
    assert await status_of(elsewhere, "/api/v1/events", **{"X-Forwarded-User": "alice"}) == 401


async def test_a_token_of_ours_through_the_proxy_keeps_its_own_role(make_client: Any) -> None:
    """One of our bearer tokens means the same with or without the proxy in front: a viewer
    token stays viewer (not the proxy's exporter), an admin token stays admin."""
    client = await make_client(
        host="0.0.0.0", auth_proxy_addresses="127.0.0.0/8", access_tokens=TOKENS
    )
    viewer = {"X-Forwarded-User": "alice", "Authorization": "Bearer v-token"}
    assert await status_of(client, "/api/v1/events", **viewer) == 200
    assert await status_of(client, EXPORT[0], **viewer) == 403
    admin = {"X-Forwarded-User": "alice", "Authorization": "Bearer a-token"}
    assert await status_of(client, ADMIN[0], **admin) == 200
    proxied = {"X-Forwarded-User": "alice", "Authorization": "Bearer not-ours"}
    assert await status_of(client, EXPORT[0], **proxied) == 200
    assert await status_of(client, ADMIN[0], **proxied) == 403


async def test_loopback_without_access_settings_is_open(make_client: Any) -> None:
    client = await make_client()
    for url in ("/", "/api/v1/events", *EXPORT, *ADMIN):
        assert await status_of(client, url) == 200, url


async def test_ingest_tokens_do_not_read(make_client: Any) -> None:
    client = await make_client(host="0.0.0.0", ingest_tokens="i-token=c1", access_tokens=TOKENS)
    posted = await client.post(
        "/ingest",
        json=event_list([audit_event()]),
        headers={"Authorization": "Bearer i-token"},
    )
    assert posted.status_code == 200
    read = await client.get("/api/v1/events", headers={"Authorization": "Bearer i-token"})
    assert read.status_code == 401
