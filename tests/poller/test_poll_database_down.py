"""PostgreSQL goes away mid-run: the failed page's checkpoint is not advanced, nothing is lost.

Uses its own PostgreSQL server (stopping the shared one would break the other tests).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.migrate import upgrade_to_head
from app.poller.source import EsSource, Page, Snapshot, Stream, make_client
from tests.conftest import query_all, requires_fixtures
from tests.pg import TestPostgres
from tests.poller.es_data import TENANT, bulk_index, create_indices, generated, v1_events
from tests.poller.helpers import poll_once, poller_settings

pytestmark = [pytest.mark.es, pytest.mark.asyncio, requires_fixtures]


class StoppingSource(EsSource):
    """Stops PostgreSQL while fetching the second page (after the first was committed)."""

    def __init__(self, pg: TestPostgres, **kwargs: Any) -> None:
        super().__init__(make_client(kwargs.pop("settings")), **kwargs)
        self.pg = pg
        self.pages = 0

    async def fetch(self, snap: Snapshot, stream: Stream, **kwargs: Any) -> Page:
        page = await super().fetch(snap, stream, **kwargs)
        self.pages += 1
        if self.pages == 2:
            await asyncio.to_thread(self.pg.stop)
        return page


async def test_database_down_keeps_the_checkpoint_at_the_last_committed_page(
    es_url: str, stoppable_postgres: TestPostgres, tmp_path: Path
) -> None:
    url = stoppable_postgres.create_database("audit_timeline_poll_down")
    await asyncio.to_thread(upgrade_to_head, url)
    create_indices(es_url)
    events = v1_events()[:60]
    bulk_index(
        es_url, [(TENANT, {**e, "generated_time": generated(i)}) for i, e in enumerate(events)]
    )
    settings = poller_settings(url, tmp_path, es_url, es_page_size=10, es_overlap=0.0)
    source = StoppingSource(stoppable_postgres, settings=settings, index=settings.es_index)

    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever psycopg raises when PG dies
        await poll_once(settings, source=source)
    stoppable_postgres.start()

    assert query_all(url, "SELECT count(*) FROM audit_event") == [(10,)]
    cursor = query_all(
        url, "SELECT to_char(cursor_at AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') FROM poll_checkpoint"
    )
    assert cursor == [(generated(9)[11:23],)]  # the 10th document: the last committed page
    result = await poll_once(settings)
    assert result.stored == 50
    assert query_all(url, "SELECT count(DISTINCT audit_id) FROM audit_event") == [(60,)]
