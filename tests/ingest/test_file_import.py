"""Log file import into real PostgreSQL: the real fixtures, re-import, gzip, bad lines, the CLI.

Expected counts come from tests/fixture_oracle.py, which is independent of app.audit.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.queries import StoreResult
from app.audit.redact import Redactor
from app.db import make_engine, make_sessionmaker
from app.ingest.file_import import import_files
from tests.builders import audit_event
from tests.conftest import TEST_REDACTION_KEY, fixture_paths, query_all, requires_fixtures
from tests.fixture_oracle import Expected, expected_from

pytestmark = requires_fixtures


def expect_import(paths: Iterable[Path]) -> Expected:
    return expected_from(paths)


def as_result(expected: Expected) -> StoreResult:
    return StoreResult(len(expected.events), expected.duplicates, expected.quarantined)


def write_gzip_copy(source: Path, directory: Path) -> Path:
    target = directory / (source.name + ".gz")
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


def write_truncated_gzip(source: Path, directory: Path) -> tuple[Path, int]:
    """A .gz of source cut in the middle; returns it and how many whole lines it still holds."""
    compressed = gzip.compress(source.read_bytes())
    cut = compressed[: len(compressed) // 2]
    readable = zlib.decompressobj(wbits=31).decompress(cut)
    target = directory / (source.name + ".gz")
    target.write_bytes(cut)
    return target, readable.count(b"\n")


def count_stored(url: str, cluster: str) -> int:
    return query_all(url, "SELECT count(*) FROM audit_event WHERE cluster = %s", (cluster,))[0][0]


def quarantined_origins(url: str) -> list[str]:
    """Origins of quarantined lines (conflicts, which have no line of their own, left out)."""
    rows = query_all(
        url, "SELECT origin FROM quarantined_item WHERE origin IS NOT NULL ORDER BY id"
    )
    return [row[0] for row in rows]


@pytest_asyncio.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url, pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def redactor() -> Redactor:
    return Redactor(TEST_REDACTION_KEY.encode(), [])


def test_fixture_files_are_there() -> None:
    assert fixture_paths(), "no *.jsonl under ../shared/fixtures/real"


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
@pytest.mark.asyncio(loop_scope="session")
async def test_import_stores_every_distinct_event_and_quarantines_the_rest(
    path: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    redactor: Redactor,
    database_url: str,
) -> None:
    expected = expect_import([path])

    result = await import_files(sessionmaker, [path], cluster="real", redactor=redactor)

    assert result == as_result(expected)
    assert count_stored(database_url, "real") == len(expected.events)
    stored_keys = query_all(database_url, "SELECT audit_id, stage FROM audit_event")
    assert set(stored_keys) == set(expected.events)
    assert sorted(quarantined_origins(database_url)) == sorted(expected.not_event_origins)


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
@pytest.mark.asyncio(loop_scope="session")
async def test_reimport_stores_nothing_new(
    path: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    redactor: Redactor,
    database_url: str,
) -> None:
    expected = expect_import([path])
    await import_files(sessionmaker, [path], cluster="real", redactor=redactor)

    again = await import_files(sessionmaker, [path], cluster="real", redactor=redactor)

    assert again.stored == 0
    assert again.duplicates == len(expected.events) + expected.duplicates
    assert count_stored(database_url, "real") == len(expected.events)


@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.name)
@pytest.mark.asyncio(loop_scope="session")
async def test_gzip_copy_imports_the_same(
    path: Path,
    sessionmaker: async_sessionmaker[AsyncSession],
    redactor: Redactor,
    database_url: str,
    tmp_path: Path,
) -> None:
    expected = expect_import([path])
    compressed = write_gzip_copy(path, tmp_path)

    result = await import_files(sessionmaker, [compressed], cluster="gz", redactor=redactor)

    assert result == as_result(expected)
    assert count_stored(database_url, "gz") == len(expected.events)
    assert sorted(quarantined_origins(database_url)) == sorted(
        origin.replace(path.name, compressed.name, 1) for origin in expected.not_event_origins
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_lines_are_quarantined_with_file_and_line(
    sessionmaker: async_sessionmaker[AsyncSession],
    redactor: Redactor,
    database_url: str,
    tmp_path: Path,
) -> None:
    good = [audit_event(), audit_event(), audit_event()]
    truncated = json.dumps(audit_event())[:-25]
    with_nul = json.dumps(audit_event(userAgent="kube\u0000ctl"))
    assert "\\u0000" in with_nul
    lines = [
        json.dumps(good[0]),  # 1
        "this is not JSON {",  # 2
        "",  # 3: blank, skipped silently
        json.dumps(good[1]),  # 4
        truncated,  # 5
        with_nul,  # 6
        json.dumps(good[2]),  # 7
    ]
    log = tmp_path / "mixed.log"
    log.write_text("\n".join(lines) + "\n")

    result = await import_files(sessionmaker, [log], cluster="mixed", redactor=redactor)

    assert result == StoreResult(stored=3, duplicates=0, quarantined=3)
    assert sorted(quarantined_origins(database_url)) == [
        "mixed.log:2",
        "mixed.log:5",
        "mixed.log:6",
    ]
    errors = dict(query_all(database_url, "SELECT origin, error FROM quarantined_item"))
    assert "NUL" in errors["mixed.log:6"]
    stored_ids = {row[0] for row in query_all(database_url, "SELECT audit_id FROM audit_event")}
    assert stored_ids == {event["auditID"] for event in good}


def run_cli(*args: str, database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AUDIT_TIMELINE_DATABASE_URL": database_url,
        "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
        "AUDIT_TIMELINE_REDACTION_KEY": TEST_REDACTION_KEY,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=data_dir,  # no stray .env is picked up
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_import_prints_the_summary(database_url: str, tmp_path: Path) -> None:
    paths = fixture_paths()
    expected = as_result(expect_import(paths))

    done = run_cli(
        "import",
        *map(str, paths),
        "--cluster",
        "cli",
        "--no-progress",
        database_url=database_url,
        data_dir=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    summary = re.search(r"^stored (\d+), duplicates (\d+), quarantined (\d+)$", done.stdout, re.M)
    assert summary is not None, done.stdout
    assert StoreResult(*map(int, summary.groups())) == expected
    assert count_stored(database_url, "cli") == expected.stored


@pytest.mark.asyncio(loop_scope="session")
async def test_truncated_gzip_keeps_what_is_readable_and_moves_on(
    sessionmaker: async_sessionmaker[AsyncSession],
    redactor: Redactor,
    database_url: str,
    tmp_path: Path,
) -> None:
    source, later = fixture_paths()[0], fixture_paths()[-1]
    broken, whole_lines = write_truncated_gzip(source, tmp_path)
    assert 0 < whole_lines < len(source.read_bytes().splitlines())
    readable = tmp_path / "readable.jsonl"
    readable.write_bytes(b"".join(source.read_bytes().splitlines(keepends=True)[:whole_lines]))
    expected = expect_import([readable, later])
    os.utime(broken, (0, 0))  # oldest, so it is read first and the other file after it

    result = await import_files(sessionmaker, [later, broken], cluster="cut", redactor=redactor)

    assert result.stored == len(expected.events)
    assert result.quarantined == expected.quarantined + 1
    assert f"{broken.name}:{whole_lines + 1}" in quarantined_origins(database_url)
    assert count_stored(database_url, "cut") == len(expected.events)
