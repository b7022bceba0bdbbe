"""Per-cluster ingest limits: token buckets of events and bytes, 429 + Retry-After, and one
flooding cluster does not take the others' share."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from app.ingest.limits import TokenBucket
from app.main import create_app
from tests.api.test_openapi_errors import assert_documented
from tests.builders import audit_event, event_list
from tests.conftest import make_settings, query_all

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def limited(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeClock]]:
    settings = make_settings(
        database_url,
        tmp_path,
        host="0.0.0.0",
        ingest_tokens="flood=noisy,calm=quiet",
        ingest_rate_events=10,
        ingest_burst_events=20,
        ingest_rate_bytes=4096,
        ingest_burst_bytes=64 * 1024,
    )
    app = create_app(settings)
    clock = FakeClock()
    app.state.ingest_limiter.clock = clock
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield http, clock


async def send(http: httpx.AsyncClient, token: str, count: int) -> httpx.Response:
    body = json.dumps(event_list([audit_event() for _ in range(count)]))
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    return await http.post("/ingest", content=body, headers=headers)


def stored(database_url: str, cluster: str) -> int:
    rows = query_all(
        database_url, "SELECT count(*) FROM audit_event WHERE cluster = %s", (cluster,)
    )
    return int(rows[0][0])


async def test_a_flooding_cluster_gets_429_and_the_others_do_not(
    limited: tuple[httpx.AsyncClient, FakeClock], database_url: str
) -> None:
    http, clock = limited
    assert (await send(http, "flood", 20)).status_code == 200  # the whole burst
    refused = await send(http, "flood", 5)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"  # 5 events at 10/s
    assert "cluster 'noisy' is over its ingest rate (events)" in refused.json()["error"]
    await assert_documented(http, refused, "/ingest", "post")
    # The quiet cluster has its own bucket, untouched by the flood.
    for _ in range(2):
        assert (await send(http, "calm", 10)).status_code == 200
    assert (stored(database_url, "noisy"), stored(database_url, "quiet")) == (20, 20)
    clock.now += 1.0  # refilled by 10
    assert (await send(http, "flood", 10)).status_code == 200
    too_many = await send(http, "flood", 20)
    assert too_many.headers["retry-after"] == "2"
    clock.now += 2.0
    assert (await send(http, "flood", 20)).status_code == 200
    assert stored(database_url, "noisy") == 50


async def test_bytes_are_limited_too(limited: tuple[httpx.AsyncClient, FakeClock]) -> None:
    http, clock = limited
    headers = {"authorization": "Bearer calm", "content-type": "application/json"}
    big = json.dumps(event_list([audit_event(userAgent="x" * 40_000)]))
    assert (await http.post("/ingest", content=big, headers=headers)).status_code == 200
    refused = await http.post("/ingest", content=big, headers=headers)
    assert refused.status_code == 429
    assert "(bytes)" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 4  # ~16 KiB missing at 4 KiB/s
    clock.now += 30
    assert (await http.post("/ingest", content=big, headers=headers)).status_code == 200


async def test_token_bucket_never_refuses_a_batch_for_ever() -> None:
    bucket = TokenBucket(rate=10, burst=100, tokens=100)
    assert bucket.take(500, now=0.0) == 0.0  # above the burst: taken from a full bucket
    assert bucket.take(500, now=1.0) == pytest.approx(9.0)  # 10 refilled, 100 needed
    assert bucket.take(500, now=10.0) == 0.0
    assert TokenBucket(rate=0, burst=1, tokens=0).take(10**9, now=0.0) == 0.0
