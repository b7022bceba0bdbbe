"""The app's sessions compress TOASTed values with lz4 where the server has it (pglz otherwise,
as on the embedded build), so the stored event bodies are lz4."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from app.audit.intake import prepare_batch
from app.audit.queries import store_batch
from app.audit.redact import Redactor
from app.db import make_engine, make_sessionmaker
from app.ingest.decode import split_body
from app.migrate import upgrade_to_head
from tests.builders import audit_event, event_list
from tests.conftest import query_all
from tests.pg import TestPostgres

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _store_big_event(url: str) -> tuple[str, str]:
    """Store one event with a ~200 kB body through the app's path; return the session's
    default_toast_compression and the stored body's compression."""
    body = {"data": [f"line {i} of a large configuration file" for i in range(5000)]}
    batch = prepare_batch(
        split_body(json.dumps(event_list([audit_event(requestObject=body)])).encode(), max_items=1),
        cluster="c",
        source="webhook",
        redactor=Redactor(b"toast-compression-test-key-01234"),
    )
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            setting = (await session.execute(text("SHOW default_toast_compression"))).scalar_one()
            await store_batch(
                session, events=batch.events, quarantined=[], cluster="c", source="webhook"
            )
    finally:
        await engine.dispose()
    [(stored,)] = query_all(url, "SELECT pg_column_compression(request_object) FROM audit_event")
    return setting, stored


async def test_embedded_build_keeps_pglz(postgres: TestPostgres) -> None:
    url = postgres.create_database("toast_embedded")
    await asyncio.to_thread(upgrade_to_head, url)
    [(methods,)] = query_all(
        url, "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    assert "lz4" not in methods  # if the embedded build gains lz4, the README must say so
    assert await _store_big_event(url) == ("pglz", "pglz")


@contextlib.contextmanager
def _debian_postgres() -> Iterator[str]:
    """A throw-away cluster of the distribution's PostgreSQL (built with lz4), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no distribution PostgreSQL (/usr/lib/postgresql/*/bin) to compare with")
    bin_dir = Path(found[-1]).parent
    # Not under pytest's tmp_path: its parents are private to root, and the server is not root.
    folder = Path(tempfile.mkdtemp(prefix="at-pg-lz4-"))
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, user)
    run = ["runuser", "-u", user, "--"] if os.geteuid() == 0 else []
    data = folder / "data"
    subprocess.run([*run, bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-c listen_addresses='' -k {folder} -p 5433"
    subprocess.run([*run, bin_dir / "pg_ctl", "-D", data, "-o", options, "-l", folder / "log",
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@/postgres?host={folder}&port=5433"
    finally:
        subprocess.run([*run, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


async def test_server_with_lz4_stores_bodies_as_lz4() -> None:
    with _debian_postgres() as url:
        await asyncio.to_thread(upgrade_to_head, url)
        assert await _store_big_event(url) == ("lz4", "lz4")
