"""`audit-timeline import --follow` as a real process against real PostgreSQL.

Appends (with a line completed later), rotation by rename (also while the follower is down),
SIGKILL and restart, truncation in place: every written line must be stored exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import audit_event
from tests.conftest import TEST_REDACTION_KEY, query_all

CLUSTER = "c1"
WAIT_SECONDS = 30.0


class Follower:
    """The real `audit-timeline import --follow PATH` process, which a test kills and restarts."""

    def __init__(self, path: Path, *, database_url: str, data_dir: Path) -> None:
        self.path = path
        self.data_dir = data_dir
        self.output = data_dir / "follower.out"
        self.env = {
            **os.environ,
            "AUDIT_TIMELINE_DATABASE_URL": database_url,
            "AUDIT_TIMELINE_DATA_DIR": str(data_dir),
            "AUDIT_TIMELINE_REDACTION_KEY": TEST_REDACTION_KEY,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        command = Path(sys.executable).parent / "audit-timeline"
        # Output goes to a file: an unread pipe would fill up and block the follower.
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                [str(command), "import", "--follow", str(self.path), "--cluster", CLUSTER],
                env=self.env,
                cwd=self.data_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last commit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM, the polite stop; return the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def read_output(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    return logs / "kube-audit.log"


@pytest.fixture
def follower(log_path: Path, database_url: str, tmp_path: Path) -> Iterator[Follower]:
    process = Follower(log_path, database_url=database_url, data_dir=tmp_path)
    try:
        yield process
    finally:
        process.kill()


def write_events(path: Path, count: int, *, tail: bytes = b"") -> list[str]:
    """Append tail (the rest of a half-written line), then count event lines; return their IDs."""
    events = [audit_event() for _ in range(count)]
    data = tail + b"".join(json.dumps(e).encode() + b"\n" for e in events)
    with path.open("ab") as handle:
        handle.write(data)
    return [e["auditID"] for e in events]


def write_half_line(path: Path) -> tuple[str, bytes]:
    """Append the first half of one event line; return its auditID and the rest of the line."""
    event = audit_event()
    line = json.dumps(event).encode() + b"\n"
    half = len(line) // 2
    with path.open("ab") as handle:
        handle.write(line[:half])
    return event["auditID"], line[half:]


def count_by_audit_id(url: str) -> dict[str, int]:
    rows = query_all(url, "SELECT audit_id, count(*) FROM audit_event GROUP BY audit_id")
    return dict(rows)


def count_quarantined(url: str) -> int:
    return query_all(url, "SELECT count(*) FROM quarantined_item")[0][0]


def wait_until_stored(url: str, audit_ids: list[str], follower: Follower) -> None:
    """Poll the database until every auditID is stored, or fail with the follower's output."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        missing = set(audit_ids) - set(count_by_audit_id(url))
        if not missing:
            return
        if not follower.is_running():
            pytest.fail(f"follower exited; output:\n{follower.read_output()}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"{len(missing)} of {len(audit_ids)} lines not stored after {WAIT_SECONDS}s;"
                f" follower output:\n{follower.read_output()[-4000:]}"
            )
        time.sleep(0.1)


def rotate_by_rename(path: Path, name: str | None = None) -> Path:
    """Move the file aside, as logrotate (path.1) or kube-apiserver's lumberjack
    (kube-audit-2026-11-27T08-00-00.000.log) do."""
    rotated = path.with_name(name or path.name + ".1")
    path.rename(rotated)
    return rotated


def test_follow_stores_every_line_once_through_rotation_and_restarts(
    log_path: Path, follower: Follower, database_url: str
) -> None:
    written: list[str] = []

    # Lines that were there before the follower started, then appends with a half line.
    ids = write_events(log_path, 3)
    written += ids
    follower.start()
    wait_until_stored(database_url, written, follower)
    ids = write_events(log_path, 2)
    written += ids
    half_id, rest = write_half_line(log_path)
    wait_until_stored(database_url, written, follower)
    ids = write_events(log_path, 1, tail=rest)
    written += [half_id, *ids]
    wait_until_stored(database_url, written, follower)

    # Rotation while running; the writer still finishes lines in the renamed file.
    rotated = rotate_by_rename(log_path)
    ids = write_events(rotated, 2)
    written += ids
    ids = write_events(log_path, 2)
    written += ids
    wait_until_stored(database_url, written, follower)

    # SIGKILL with a half line pending; it is finished while the follower is down.
    ids = write_events(log_path, 2)
    written += ids
    half_id, rest = write_half_line(log_path)
    wait_until_stored(database_url, written, follower)
    follower.kill()
    ids = write_events(log_path, 1, tail=rest)
    written += [half_id, *ids]
    follower.start()
    wait_until_stored(database_url, written, follower)

    # SIGKILL, then lines and a rotation while down: the old file must be finished first.
    follower.kill()
    ids = write_events(log_path, 2)
    written += ids
    rotate_by_rename(log_path, "kube-audit-2026-11-27T08-00-00.000.log")
    ids = write_events(log_path, 2)
    written += ids
    follower.start()
    wait_until_stored(database_url, written, follower)

    # copytruncate: copy aside, truncate in place, write fewer bytes than were there.
    shutil.copyfile(log_path, log_path.with_name(log_path.name + ".1"))
    os.truncate(log_path, 0)
    ids = write_events(log_path, 1)
    written += ids
    wait_until_stored(database_url, written, follower)

    assert follower.terminate() == 0
    assert count_by_audit_id(database_url) == dict.fromkeys(written, 1)
    assert count_quarantined(database_url) == 0
    checkpoint = query_all(database_url, 'SELECT inode, "offset" FROM file_checkpoint')
    assert checkpoint == [(log_path.stat().st_ino, log_path.stat().st_size)]
