"""Log file import into real PostgreSQL: the real fixtures, re-import, gzip, bad lines, the CLI.

Expected counts are worked out here from the raw lines, independently of app.audit.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.queries import StoreResult
from app.audit.redact import Redactor
from app.db import make_engine, make_sessionmaker
from app.ingest.file_import import import_files
from tests.builders import audit_event
from tests.conftest import TEST_REDACTION_KEY, fixture_paths, query_all, requires_fixtures

pytestmark = requires_fixtures

AUDIT_API_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1")


@dataclass
class Expected:
    """What importing some lines should give: event keys in order, quarantined origins."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    quarantined: set[str] = field(default_factory=set)

    @property
    def stored(self) -> int:
        return len(set(self.keys))

    @property
    def result(self) -> StoreResult:
        return StoreResult(self.stored, len(self.keys) - self.stored, len(self.quarantined))


def unwrap_aks_record(value: Any) -> Any:
    """The Event inside an AKS diagnostic record (properties.log, object or JSON string)."""
    if not isinstance(value, dict) or "auditID" in value:
        return value
    props = value.get("properties")
    inner = props.get("log") if isinstance(props, dict) else None
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except ValueError:
            return value
    return inner if isinstance(inner, dict) and "auditID" in inner else value


def contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


def event_key(line: bytes) -> tuple[str, str] | None:
    """(auditID, stage) when the line holds a valid audit Event, else None."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if contains_nul(value):
        return None
    event = unwrap_aks_record(value)
    if not isinstance(event, dict):
        return None
    if not all(isinstance(event.get(k), str) for k in ("auditID", "stage", "verb")):
        return None
    if event.get("kind", "Event") != "Event":
        return None
    if "apiVersion" in event and event["apiVersion"] not in AUDIT_API_VERSIONS:
        return None
    if "stageTimestamp" not in event and "timestamp" not in event:
        return None
    return event["auditID"], event["stage"]


def expect_import(paths: Iterable[Path]) -> Expected:
    """Classify every non-blank line of the files (one cluster, so keys dedupe across files)."""
    expected = Expected()
    for path in paths:
        for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not line.strip():
                continue
            key = event_key(line)
            if key is None:
                expected.quarantined.add(f"{path.name}:{number}")
            else:
                expected.keys.append(key)
    return expected


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
    return [row[0] for row in query_all(url, "SELECT origin FROM quarantined_item ORDER BY id")]


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

    assert result == expected.result
    assert count_stored(database_url, "real") == expected.stored
    stored_keys = query_all(database_url, "SELECT audit_id, stage FROM audit_event")
    assert set(stored_keys) == set(expected.keys)
    assert sorted(quarantined_origins(database_url)) == sorted(expected.quarantined)


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
    assert again.duplicates == len(expected.keys)
    assert count_stored(database_url, "real") == expected.stored


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

    assert result == expected.result
    assert count_stored(database_url, "gz") == expected.stored
    assert sorted(quarantined_origins(database_url)) == sorted(
        origin.replace(path.name, compressed.name, 1) for origin in expected.quarantined
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
    expected = expect_import(paths).result

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

    assert result.stored == expected.stored
    assert result.quarantined == len(expected.quarantined) + 1
    assert f"{broken.name}:{whole_lines + 1}" in quarantined_origins(database_url)
    assert count_stored(database_url, "cut") == expected.stored
