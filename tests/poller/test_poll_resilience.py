"""The poller survives: SIGKILL between pages, Elasticsearch restarts, a rival replica, garbage
documents, indices deleted while paging, PostgreSQL going away."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.poller.loop import lock_key
from app.poller.source import EsSource, Page, Snapshot, Stream
from tests.conftest import query_all, requires_fixtures
from tests.es_server import EsServer
from tests.poller.es_data import (
    INDEX_PATTERN,
    TENANT,
    bulk_index,
    calico_documents,
    create_indices,
    es_call,
    expected_keys,
    fixture_events,
    generated,
    load_calico,
    v1_events,
)
from tests.poller.helpers import (
    CLI,
    cli_env,
    new_poller,
    poll_once,
    poller_settings,
    start_cli,
    stored_keys,
    wait_for,
    wait_for_async,
)

pytestmark = [pytest.mark.es, requires_fixtures]


def count(url: str, sql: str) -> int:
    return int(query_all(url, sql)[0][0])


def test_sigkill_between_pages_then_restart_loses_and_doubles_nothing(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    placed = calico_documents(fixture_events())
    load_calico(es_url, placed)
    expected = expected_keys(placed)
    env = cli_env(
        database_url,
        es_url,
        tmp_path,
        AUDIT_TIMELINE_ES_PAGE_SIZE="10",
        AUDIT_TIMELINE_ES_OVERLAP="0",
    )
    log = tmp_path / "poll.log"

    first = start_cli(["poll", "--once"], env, tmp_path, log)
    try:
        # Pages commit one by one: kill as soon as some, not all, are in.
        wait_for(
            lambda: (
                first.poll() is not None
                or count(database_url, "SELECT count(*) FROM poll_checkpoint") > 0
            ),
            60,
            "the first committed page",
        )
        assert first.poll() is None, log.read_text()[-3000:]
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(10)
    stored_before = count(database_url, "SELECT count(*) FROM audit_event")
    assert 0 < stored_before < len(expected), "the kill did not land mid-run"

    done = start_cli(["poll", "--once"], env, tmp_path, log)
    assert done.wait(120) == 0, log.read_text()[-3000:]
    summary = re.findall(r"read (\d+), stored (\d+)", log.read_text())[-1]
    keys = stored_keys(database_url)
    assert len(keys) == len(set(keys)) == len(expected)
    assert set(keys) == expected
    # It resumed from the checkpoint instead of starting over.
    assert int(summary[0]) < sum(1 for p in placed if p.cluster is not None)
    assert int(summary[1]) == len(expected) - stored_before


@pytest.mark.asyncio
async def test_garbage_document_is_quarantined_with_index_and_id(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = v1_events()[:5]
    good = [
        (TENANT, {**e, "cluster": "gamma", "generated_time": generated(i)})
        for i, e in enumerate(events)
    ]
    garbage = [
        (TENANT, {"generated_time": generated(2), "cluster": "gamma", "hello": "not an event"}),
        (TENANT, {**events[0], "auditID": None, "generated_time": generated(3)}),
    ]
    ids = bulk_index(es_url, good[:2] + garbage + good[2:])

    result = await poll_once(poller_settings(database_url, tmp_path, es_url))

    assert result.quarantined == 2
    assert result.stored == len({(e["auditID"], e["stage"]) for e in events})
    rows = query_all(database_url, "SELECT origin, cluster, source, error FROM quarantined_item")
    origins = {r[0] for r in rows}
    assert origins == {f"es:{TENANT}/{ids[2]}", f"es:{TENANT}/{ids[3]}"}
    assert {r[1] for r in rows} == {"gamma"}
    assert {r[2] for r in rows} == {"elasticsearch"}
    assert any("auditID" in r[3] for r in rows)


class DeletingSource(EsSource):
    """Deletes an index right after the first page is fetched (retention while paging)."""

    def __init__(self, url: str, victim: str, **kwargs: Any) -> None:
        from app.poller.source import make_client

        super().__init__(make_client(kwargs.pop("settings")), **kwargs)
        self.url = url
        self.victim = victim
        self.pages = 0

    async def fetch(self, snap: Snapshot, stream: Stream, **kwargs: Any) -> Page:
        page = await super().fetch(snap, stream, **kwargs)
        self.pages += 1
        if self.pages == 1:
            await asyncio.to_thread(es_call, self.url, "DELETE", f"/{self.victim}")
        return page


@pytest.mark.asyncio
async def test_index_deleted_while_paging_does_not_stop_the_cycle(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    placed = calico_documents(fixture_events())
    load_calico(es_url, placed)
    settings = poller_settings(database_url, tmp_path, es_url, es_page_size=20)
    source = DeletingSource(es_url, TENANT, settings=settings, index=settings.es_index)

    await poll_once(settings, source=source)

    assert source.pages > 2
    keys = set(stored_keys(database_url))
    survivors = expected_keys([p for p in placed if p.target != TENANT])
    assert survivors <= keys  # everything outside the deleted index was stored


@pytest.mark.asyncio
async def test_elasticsearch_stop_and_start_the_poller_recovers(
    es_server: EsServer, es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = v1_events()
    bulk_index(
        es_url, [(TENANT, {**e, "generated_time": generated(i)}) for i, e in enumerate(events[:20])]
    )
    poller = new_poller(poller_settings(database_url, tmp_path, es_url))
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run_forever(stop))
    try:
        await wait_for_async(lambda: poller.status.totals.read >= 20, 30, "the first cycle")
        await asyncio.to_thread(es_server.stop)
        await wait_for_async(
            lambda: poller.status.state == "backoff" and poller.status.consecutive_failures >= 2,
            30,
            "back-off while Elasticsearch is down",
        )
        assert poller.status.last_error is not None
        assert poller.status.last_error.startswith("elasticsearch")
        assert poller.metrics.poller_errors.labels("elasticsearch")._value.get() >= 2
        await asyncio.to_thread(es_server.start)
        bulk_index(
            es_url,
            [
                (TENANT, {**e, "generated_time": generated(100 + i)})
                for i, e in enumerate(events[20:40])
            ],
        )
        expected = len({(e["auditID"], e["stage"]) for e in events[:40]})
        await wait_for_async(
            lambda: (
                count(database_url, "SELECT count(*) FROM audit_event") == expected
                and poller.status.consecutive_failures == 0
            ),
            60,
            "the documents indexed after the restart, and a clean cycle",
        )
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await poller.source.close()
        await poller.engine.dispose()


def lock_holder(database_url: str) -> list[str]:
    # The poller's lock, not the short ones ingest and partition creation take meanwhile.
    key = lock_key(INDEX_PATTERN) & (2**64 - 1)
    rows = query_all(
        database_url,
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
        (key >> 32, key & 0xFFFFFFFF),
    )
    return [r[0] for r in rows]


def test_two_pollers_one_works_the_other_takes_over_when_it_dies(
    es_url: str, database_url: str, tmp_path: Path
) -> None:
    create_indices(es_url)
    events = v1_events()
    bulk_index(
        es_url, [(TENANT, {**e, "generated_time": generated(i)}) for i, e in enumerate(events[:30])]
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("poller-a", "poller-b"):
            env = cli_env(f"{database_url}&application_name={name}", es_url, tmp_path)
            procs[name] = start_cli(["poll"], env, tmp_path, tmp_path / f"{name}.log")
            if name == "poller-a":
                wait_for(lambda: lock_holder(database_url) == ["poller-a"], 30, "a to lead")
        expected = len({(e["auditID"], e["stage"]) for e in events[:30]})
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM audit_event") == expected,
            30,
            "a to store",
        )
        wait_for(lambda: "poller.standby" in (tmp_path / "poller-b.log").read_text(), 30, "b")
        assert lock_holder(database_url) == ["poller-a"]
        assert "poller.stream_done" not in (tmp_path / "poller-b.log").read_text()
        # A one-shot run (cron, CI) next to the active poller returns instead of waiting.
        env = cli_env(f"{database_url}&application_name=once", es_url, tmp_path)
        once = subprocess.run(
            [CLI, "poll", "--once"], env=env, cwd=tmp_path, capture_output=True, timeout=60
        )
        assert once.returncode == 0, once.stderr
        assert b"another poller is active: nothing done" in once.stdout

        procs["poller-a"].send_signal(signal.SIGKILL)
        procs["poller-a"].wait(10)
        wait_for(lambda: lock_holder(database_url) == ["poller-b"], 30, "b to take over")
        bulk_index(
            es_url,
            [
                (TENANT, {**e, "generated_time": generated(100 + i)})
                for i, e in enumerate(events[30:60])
            ],
        )
        expected = len({(e["auditID"], e["stage"]) for e in events[:60]})
        wait_for(
            lambda: count(database_url, "SELECT count(*) FROM audit_event") == expected,
            30,
            "b to store the new documents",
        )
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    assert procs["poller-b"].returncode == 0  # SIGTERM: finish the page, exit cleanly
