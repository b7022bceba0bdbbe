"""`import --follow`: tail a live audit log through rotation and restarts, losing no line.

The position (inode + byte offset after the last complete line) is saved in the same
transaction as the events it covers, so a crash at any point re-reads at most one batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import queries
from app.audit.intake import prepare_batch
from app.audit.queries import EMPTY_RESULT, StoreResult
from app.audit.redact import Redactor
from app.db import DATABASE_DOWN_ERRORS
from app.ingest.file_import import MAX_LINE_BYTES, SOURCE, display_name, line_item

logger = logging.getLogger(__name__)

READ_CHUNK = 4 * 1024 * 1024
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class _Open:
    handle: int  # an OS file descriptor: it keeps reading a renamed file
    inode: int
    offset: int


def find_rotated(path: Path, inode: int) -> Path | None:
    """The file in path's folder that now holds inode (path.1 after logrotate,
    kube-audit-2026-11-27T08-00-00.000.log after kube-apiserver's own rotation), if any."""
    for candidate in sorted(path.parent.iterdir()):
        try:
            if candidate.stat().st_ino == inode and candidate.suffix != ".gz":
                return candidate
        except FileNotFoundError:
            continue
    return None


class FileFollower:
    def __init__(
        self,
        path: Path,
        *,
        cluster: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        redactor: Redactor,
        poll_seconds: float = 0.5,
    ) -> None:
        self.path = path.absolute()
        self.key = os.fsencode(self.path).decode("utf-8", "backslashreplace")
        self.name = display_name(self.path)
        self.cluster = cluster
        self.sessionmaker = sessionmaker
        self.redactor = redactor
        self.poll_seconds = poll_seconds
        self.total = EMPTY_RESULT

    async def run(self, stop: asyncio.Event) -> StoreResult:
        """Follow until stop is set; return what was stored."""
        current: _Open | None = None
        is_resumed = False
        backoff = self.poll_seconds
        try:
            while not stop.is_set():
                try:
                    if not is_resumed:
                        current = await self._resume()
                        is_resumed = True
                    if current is None:
                        current = self._open_new()
                    if current is None:
                        is_idle = True  # the file does not exist (yet)
                    else:
                        current, is_idle = await self._step(current)
                except DATABASE_DOWN_ERRORS as exc:
                    # Nothing of the failed batch was committed and the offset did not move:
                    # the same lines are read again once PostgreSQL answers.
                    logger.warning(
                        "follow.database_unavailable",
                        extra={"path": self.key, "retry_in": backoff, "error": str(exc)[:200]},
                    )
                    await self._sleep(stop, backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                    continue
                backoff = self.poll_seconds
                if is_idle:
                    await self._sleep(stop, self.poll_seconds)
        finally:
            if current is not None:
                os.close(current.handle)
        return self.total

    async def _step(self, current: _Open) -> tuple[_Open | None, bool]:
        """Store what is new, or move on to a rotated-in file; True as well when there was none."""
        if await self._read_available(current, final=False):
            return current, False
        if self._replacement(current):
            # Rotated: the old file may have gained lines since the last read.
            await self._read_available(current, final=True)
            os.close(current.handle)
            logger.info("follow.rotated", extra={"path": self.key})
            return self._open_new(), False
        return current, True

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    async def _resume(self) -> _Open | None:
        async with self.sessionmaker() as session:
            checkpoint = await queries.get_file_checkpoint(session, path=self.key)
        if checkpoint is None:
            return self._open_new()
        try:
            inode_now = self.path.stat().st_ino
        except FileNotFoundError:
            inode_now = None
        if inode_now == checkpoint.inode:
            opened = self._open_new()
            if opened is not None and checkpoint.offset <= os.fstat(opened.handle).st_size:
                opened.offset = checkpoint.offset
            return opened
        # Rotated while we were away: finish the old file first, if it is still there.
        rotated = find_rotated(self.path, checkpoint.inode)
        if rotated is None:
            logger.warning("follow.rotated_file_gone", extra={"path": self.key})
            return self._open_new()
        handle = os.open(rotated, os.O_RDONLY)
        try:
            opened = _Open(handle=handle, inode=checkpoint.inode, offset=checkpoint.offset)
            await self._read_available(opened, final=True)
        finally:
            os.close(handle)
        return self._open_new()

    def _open_new(self) -> _Open | None:
        try:
            handle = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        return _Open(handle=handle, inode=os.fstat(handle).st_ino, offset=0)

    def _replacement(self, current: _Open) -> bool:
        """True when the path now names another file (rotation); handles truncation in place."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return False  # renamed, new file not created yet: keep reading the old one
        if stat.st_ino != current.inode:
            return True
        if stat.st_size < current.offset:
            logger.warning("follow.truncated", extra={"path": self.key})
            current.offset = 0
        return False

    async def _read_available(self, current: _Open, *, final: bool) -> bool:
        """Store every complete line after current.offset; True when anything was read."""
        progressed = False
        size = READ_CHUNK
        while True:
            data = os.pread(current.handle, size, current.offset)
            if not data:
                return progressed
            end = data.rfind(b"\n")
            if end < 0:
                if len(data) == size and size < MAX_LINE_BYTES:
                    size *= 2  # one long line: read more of it
                    continue
                if not final and len(data) < size:
                    return progressed  # a line still being written
                end = len(data) - 1  # over-long line, or the last line of a rotated file
            size = READ_CHUNK
            chunk = data[: end + 1]
            await self._store(chunk, current, current.offset + len(chunk))
            current.offset += len(chunk)
            progressed = True

    async def _store(self, chunk: bytes, current: _Open, new_offset: int) -> None:
        items = [
            item
            for number, line in enumerate(chunk.split(b"\n"))
            if (item := line_item(line, f"{self.name}@{current.offset}+{number}")) is not None
        ]
        batch = prepare_batch(items, cluster=self.cluster, source=SOURCE, redactor=self.redactor)
        async with self.sessionmaker.begin() as session:
            result = await queries.store_batch(
                session,
                events=batch.events,
                quarantined=batch.quarantined,
                cluster=self.cluster,
                source=SOURCE,
            )
            await queries.save_file_checkpoint(
                session, path=self.key, cluster=self.cluster, inode=current.inode, offset=new_offset
            )
        self.total += result
        logger.info(
            "follow.batch_stored",
            extra={"path": self.key, "stored": result.stored, "offset": new_offset},
        )
