"""Retention: `audit-timeline prune --older-than DAYS` deletes what is older, keeps the rest."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.builders import audit_event, event_list
from tests.conftest import TEST_REDACTION_KEY, query_all
from tests.web.test_rollups import assert_rollups_match

pytestmark = pytest.mark.asyncio(loop_scope="session")


def stamp(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()


def prune(env: dict[str, str], days: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app.cli", "prune", "--older-than", days]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_prune_deletes_only_what_is_older(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    events = [audit_event(stageTimestamp=stamp(days)) for days in (1, 29, 31, 400)]
    await client.post("/ingest", json=event_list([*events, "junk"]))
    env = {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": database_url,
        "AUDIT_TIMELINE_DATA_DIR": str(tmp_path),
        "AUDIT_TIMELINE_REDACTION_KEY": TEST_REDACTION_KEY,
    }
    done = await asyncio.to_thread(prune, env, "30")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("deleted 2 events and 0 quarantined items before ")
    kept = {row[0] for row in query_all(database_url, "SELECT audit_id FROM audit_event")}
    assert kept == {events[0]["auditID"], events[1]["auditID"]}
    assert query_all(database_url, "SELECT count(*) FROM quarantined_item") == [(1,)]
    # Dropped partitions fire no trigger: prune forgot their rollup hours itself.
    assert_rollups_match(database_url)
    assert query_all(database_url, "SELECT count(*) FROM event_rollup_hourly") == [(2,)]
    refused = await asyncio.to_thread(prune, env, "0")
    assert refused.returncode == 2
    assert "from 1 to 36500" in refused.stderr
