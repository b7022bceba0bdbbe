"""PostgreSQL goes away and comes back: POST /ingest answers 503 + Retry-After, the file
follower waits; afterwards everything is stored exactly once.

Uses its own PostgreSQL server (stopping the shared one would break the other tests).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.main import create_app
from app.migrate import upgrade_to_head
from tests.builders import audit_event, event_list
from tests.conftest import make_settings, query_all
from tests.ingest.test_follow import Follower, count_by_audit_id, wait_until_stored, write_events
from tests.pg import TestPostgres

TOKEN = "down-test-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
RETRY_AFTER_SECONDS = 7


@pytest.fixture
def down_database_url(stoppable_postgres: TestPostgres) -> str:
    url = stoppable_postgres.create_database("audit_timeline_down")
    upgrade_to_head(url)
    return url


@pytest_asyncio.fixture
async def down_client(down_database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        down_database_url,
        tmp_path,
        ingest_tokens=f"{TOKEN}=c1",
        ingest_retry_after_seconds=RETRY_AFTER_SECONDS,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            yield client


async def post_batch(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> httpx.Response:
    return await client.post("/ingest", json=event_list(events), headers=HEADERS, timeout=30)


def stored_audit_ids(url: str) -> list[str]:
    return [row[0] for row in query_all(url, "SELECT audit_id FROM audit_event")]


@pytest.mark.asyncio(loop_scope="session")
async def test_ingest_answers_503_while_database_is_down_and_recovers(
    stoppable_postgres: TestPostgres, down_database_url: str, down_client: httpx.AsyncClient
) -> None:
    first = [audit_event() for _ in range(40)]
    # A webhook sender may repeat an event it already delivered: counted as a duplicate.
    second = [audit_event() for _ in range(40)] + [first[0]]

    accepted = await post_batch(down_client, first)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"stored": 40, "duplicates": 0, "quarantined": 0}

    stoppable_postgres.stop()
    try:
        refused = await post_batch(down_client, second)
        ready = await down_client.get("/readyz")
    finally:
        stoppable_postgres.start()

    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert refused.headers["content-type"].startswith("application/json")
    assert refused.json()["error"]
    assert ready.status_code == 503
    assert ready.json()["database"] == "down"

    retried = await post_batch(down_client, second)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {"stored": 40, "duplicates": 1, "quarantined": 0}
    assert (await down_client.get("/readyz")).status_code == 200

    stored = stored_audit_ids(down_database_url)
    assert sorted(stored) == sorted({e["auditID"] for e in first + second})


@pytest.fixture
def follower(down_database_url: str, tmp_path: Path) -> Iterator[Follower]:
    process = Follower(
        tmp_path / "kube-audit.log", database_url=down_database_url, data_dir=tmp_path
    )
    try:
        yield process
    finally:
        process.kill()


def wait_for_output(follower: Follower, text: str, timeout: float = 60.0) -> None:
    """Poll the follower's output until text appears, or fail."""
    deadline = time.monotonic() + timeout
    while text not in follower.read_output():
        if not follower.is_running():
            pytest.fail(f"follower exited; output:\n{follower.read_output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not logged within {timeout}s:\n{follower.read_output()}")
        time.sleep(0.1)


def test_follower_waits_out_a_database_outage(
    stoppable_postgres: TestPostgres, down_database_url: str, follower: Follower
) -> None:
    written = write_events(follower.path, 5)
    follower.start()
    wait_until_stored(down_database_url, written, follower)

    stoppable_postgres.stop()
    try:
        written += write_events(follower.path, 5)
        wait_for_output(follower, "follow.database_unavailable")
        assert follower.is_running()
    finally:
        stoppable_postgres.start()

    wait_until_stored(down_database_url, written, follower)
    assert follower.terminate() == 0
    assert count_by_audit_id(down_database_url) == dict.fromkeys(written, 1)
