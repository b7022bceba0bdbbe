"""Web test helpers: a template spy around the app, event posting, and the live browser server.

The live server (browser tests) uses a database of its own, loaded once per module, so the
per-test truncation of the shared test database does not empty it between tests.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from app.main import create_app
from app.migrate import upgrade_to_head
from tests.conftest import fixture_paths, make_settings
from tests.pg import TestPostgres


@dataclass
class TemplateSpy:
    """ASGI wrapper that records what Starlette's TemplateResponse rendered (name, context)."""

    app: Any
    rendered: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = {**scope.get("extensions", {}), "http.response.debug": {}}
            scope = {**scope, "extensions": extensions}

        async def spy_send(message: Message) -> None:
            if message["type"] == "http.response.debug":
                self.rendered.append(message["info"])
                return
            await send(message)

        await self.app(scope, receive, spy_send)

    @property
    def template(self) -> str:
        return str(self.rendered[-1]["template"].name)

    @property
    def context(self) -> dict[str, Any]:
        return dict(self.rendered[-1]["context"])


@pytest_asyncio.fixture
async def spy(app: FastAPI) -> TemplateSpy:
    return TemplateSpy(app)


@pytest_asyncio.fixture
async def web(spy: TemplateSpy) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=spy)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


async def post_events(
    client: httpx.AsyncClient, events: list[dict[str, Any]], cluster: str = "test"
) -> None:
    """Ingest events through the real endpoint."""
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
    response = await client.post("/ingest", json=body, params={"cluster": cluster})
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == len(events)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    url: str
    database_url: str


def _ingest_fixtures(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        for path in fixture_paths():
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            for start in range(0, len(lines), 400):
                items = [json.loads(line) for line in lines[start : start + 400]]
                body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
                response = http.post("/ingest", json=body, params={"cluster": "fixtures"})
                assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def live_server(
    postgres: TestPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """uvicorn on 127.0.0.1 (free port, in a thread) with the real fixtures loaded."""
    database_url = postgres.create_database("audit_timeline_browser")
    upgrade_to_head(database_url)
    settings = make_settings(database_url, tmp_path_factory.mktemp("live"))
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        _ingest_fixtures(url)
        yield LiveServer(url=url, database_url=database_url)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# The README's screenshots are refreshed only on request (UPDATE_SCREENSHOTS=1), so a test run
# leaves the tree clean; otherwise they go to a scratch folder.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "audit-timeline-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def open_server(
    request: pytest.FixtureRequest, postgres: TestPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The app in its open mode (loopback bind, no tokens) under uvicorn, with an empty
    database of the test module's own: (url, database_url)."""
    module = request.module.__name__.rpartition(".")[2]
    database_url = postgres.create_database(f"audit_timeline_{module}")
    upgrade_to_head(database_url)
    settings = make_settings(database_url, tmp_path_factory.mktemp("forgery"))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        assert thread.is_alive(), "server stopped"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", database_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
