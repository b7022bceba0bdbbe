"""`serve` with ES_URL set runs the poller in the app's lifespan; /readyz and /metrics show it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import query_all, requires_fixtures
from tests.poller.es_data import TENANT, bulk_index, create_indices, generated, v1_events
from tests.poller.helpers import poller_settings, wait_for_async

pytestmark = [pytest.mark.es, pytest.mark.asyncio, requires_fixtures]


async def test_app_lifespan_polls_and_reports_state(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = v1_events()[:15]
    bulk_index(
        es_url, [(TENANT, {**e, "generated_time": generated(i)}) for i, e in enumerate(events)]
    )
    app = create_app(poller_settings(database_url, tmp_path, es_url))
    async with app.router.lifespan_context(app):
        await wait_for_async(
            lambda: query_all(database_url, "SELECT count(*) FROM audit_event")[0][0] == 15,
            30,
            "the lifespan poller to store the documents",
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            ready = (await client.get("/readyz")).json()
            metrics = (await client.get("/metrics")).text
    assert ready["status"] == "ok"
    assert ready["poller"]["is_active"] is True
    assert ready["poller"]["state"] in ("polling", "idle")
    assert 'audit_timeline_poller_documents_total{outcome="stored"} 15.0' in metrics
    assert "audit_timeline_poller_active 1.0" in metrics
    assert "audit_timeline_poller_lag_seconds" in metrics
    assert app.state.poller.status.state == "stopped"  # the lifespan stopped it
