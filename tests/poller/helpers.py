"""Shared pieces of the poller integration tests: settings, an in-process poll, subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.db import make_engine
from app.metrics import Metrics
from app.poller.loop import CycleResult, Poller, make_poller
from app.poller.source import EsSource
from app.redaction_key import make_redactor
from app.settings import Settings
from tests.conftest import TEST_REDACTION_KEY, make_settings, query_all
from tests.poller.es_data import INDEX_PATTERN

CLI = str(Path(sys.executable).parent / "audit-timeline")


def poller_settings(database_url: str, tmp_path: Path, es_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "es_url": es_url,
        "es_index": INDEX_PATTERN,
        "es_poll_interval": 0.2,
        "es_backoff_max": 1.0,
        "es_request_timeout": 5.0,
        **overrides,
    }
    return make_settings(database_url, tmp_path, **values)


async def poll_once(
    settings: Settings,
    *,
    source: EsSource | None = None,
    metrics: Metrics | None = None,
) -> CycleResult:
    """One `poll --once` in this process (gives up on the first failure)."""
    engine = make_engine(settings.database_url.get_secret_value(), pool_size=2)  # type: ignore[union-attr]
    poller = make_poller(settings, engine, make_redactor(settings), metrics=metrics)
    if source is not None:
        await poller.source.close()
        poller.source = source
    try:
        return await poller.run_forever(asyncio.Event(), once=True, max_failures=1)
    finally:
        await poller.source.close()
        await engine.dispose()


def new_poller(settings: Settings) -> Poller:
    engine = make_engine(settings.database_url.get_secret_value(), pool_size=2)  # type: ignore[union-attr]
    return make_poller(settings, engine, make_redactor(settings))


def stored_keys(database_url: str) -> list[tuple[str, str, str]]:
    return [
        (row[0], row[1], row[2])
        for row in query_all(database_url, "SELECT cluster, audit_id, stage FROM audit_event")
    ]


def cli_env(database_url: str, es_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of an `audit-timeline poll` subprocess (nothing inherited from AUDIT_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_TIMELINE_")}
    env.update(
        AUDIT_TIMELINE_DATABASE_URL=database_url,
        AUDIT_TIMELINE_DATA_DIR=str(tmp_path / "data"),
        AUDIT_TIMELINE_REDACTION_KEY=TEST_REDACTION_KEY,
        AUDIT_TIMELINE_ES_URL=es_url,
        AUDIT_TIMELINE_ES_INDEX=INDEX_PATTERN,
        AUDIT_TIMELINE_ES_POLL_INTERVAL="0.2",
        AUDIT_TIMELINE_ES_BACKOFF_MAX="1",
        **extra,
    )
    return env


def start_cli(
    args: list[str], env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [CLI, *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


async def wait_for_async(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)
