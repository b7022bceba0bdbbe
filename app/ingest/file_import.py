"""`audit-timeline import PATH...`: JSON-lines audit logs (plain or gzip) into the store.

Reads in batches, each batch committed on its own, so an interrupted import loses nothing it
reported and a re-run stores only what is missing.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import queries
from app.audit.intake import RawItem, item_from_bytes, prepare_batch
from app.audit.queries import EMPTY_RESULT, StoreResult
from app.audit.redact import Redactor

logger = logging.getLogger(__name__)

SOURCE = "file"
BATCH_LINES = 2000
# One audit event is at most a few MiB even with bodies; a longer "line" is garbage.
MAX_LINE_BYTES = 64 * 1024 * 1024


def line_item(line: bytes, origin: str) -> RawItem | None:
    """One log line as an item (None for a blank line)."""
    line = line.strip()
    return item_from_bytes(line, origin) if line else None


def display_name(path: Path) -> str:
    """The file name as text PostgreSQL can store, whatever bytes the file system holds."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def read_batches(handle: io.BufferedIOBase, name: str) -> Iterator[list[RawItem]]:
    """Batches of items from a log, each item tagged with file name and line number.

    A .gz that ends early or is corrupt yields what was readable plus one quarantine item
    at the line where it broke, instead of failing the whole import.
    """
    batch: list[RawItem] = []
    number = 0
    while True:
        number += 1
        origin = f"{name}:{number}"
        try:
            line = handle.readline(MAX_LINE_BYTES)
            if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
                batch.append(
                    RawItem(raw=line[:4096], error="line longer than 64 MiB", origin=origin)
                )
                # Skip the rest of the over-long line.
                while (rest := handle.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                line = b""
            elif not line:
                break
        except (EOFError, OSError, zlib.error) as exc:
            batch.append(RawItem(raw=b"", error=f"unreadable from here on: {exc}", origin=origin))
            break
        item = line_item(line, origin)
        if item is not None:
            batch.append(item)
        if len(batch) >= BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def order_rotated(paths: Iterable[Path]) -> list[Path]:
    """Oldest first (by modification time), so a rotated set is read in the order written."""
    return sorted(paths, key=lambda p: (p.stat().st_mtime, str(p)))


async def store_items(
    sessionmaker: async_sessionmaker[AsyncSession],
    items: list[RawItem],
    *,
    cluster: str,
    redactor: Redactor,
) -> StoreResult:
    """Normalise and store one batch in its own transaction."""
    batch = prepare_batch(items, cluster=cluster, source=SOURCE, redactor=redactor)
    async with sessionmaker.begin() as session:
        return await queries.store_batch(
            session,
            events=batch.events,
            quarantined=batch.quarantined,
            cluster=cluster,
            source=SOURCE,
        )


async def import_files(
    sessionmaker: async_sessionmaker[AsyncSession],
    paths: Iterable[Path],
    *,
    cluster: str,
    redactor: Redactor,
    on_progress: Callable[[int], None] | None = None,
) -> StoreResult:
    """Import whole files; on_progress gets the number of (compressed) bytes consumed."""
    total = EMPTY_RESULT
    for path in order_rotated(paths):
        file_result = EMPTY_RESULT
        with path.open("rb") as probe:
            is_gzip = probe.read(2) == b"\x1f\x8b"
        with path.open("rb") as raw:
            handle: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
            position = 0
            for items in read_batches(handle, display_name(path)):
                file_result += await store_items(
                    sessionmaker, items, cluster=cluster, redactor=redactor
                )
                if on_progress is not None:
                    now = raw.tell()
                    on_progress(now - position)
                    position = now
            if on_progress is not None:
                on_progress(os.fstat(raw.fileno()).st_size - position)
        logger.info(
            "import.file_done",
            extra={
                "file": display_name(path),
                "stored": file_result.stored,
                "duplicates": file_result.duplicates,
                "quarantined": file_result.quarantined,
            },
        )
        total += file_result
    return total
