"""The weekly partitions of audit_event: which exist, creating them ahead, dropping old ones.

audit_event is partitioned by RANGE (stage_at), one partition per ISO week (Monday 00:00 UTC),
named audit_event_pYYYYMMDD after its first day, plus audit_event_default for timestamps outside
the horizon (HORIZON_PAST before now .. HORIZON_AHEAD after it), so hostile timestamps cannot
make thousands of partitions. Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on
audit_event, so both run in their own short transaction with a lock timeout, never inside an
ingest or a read: a week that could not be created in time is stored in the default partition
(still found by every query; only its retention is a DELETE instead of a DROP).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

WEEK = timedelta(days=7)
HORIZON_PAST = timedelta(days=400)
HORIZON_AHEAD = timedelta(days=21)
# Weeks made ready at start-up: the recent past (imports of recent logs) and the next two.
STARTUP_PAST = timedelta(weeks=8)
STARTUP_AHEAD = timedelta(weeks=2)
PARENT = "audit_event"
DEFAULT_PARTITION = "audit_event_default"
_LOCK_TIMEOUT = "200ms"
# Serialises creators across workers and replicas (CREATE ... IF NOT EXISTS still races).
_CREATE_LOCK_KEY = 7_261_154_380_123_009

# Week starts known to have a partition (per process; a cache, never the source of truth).
_known_weeks: set[datetime] = set()
# Weeks whose creation failed, and when: retried after _RETRY_AFTER, so a busy table does not
# make every batch wait on the lock again.
_failed_at: dict[datetime, float] = {}
_RETRY_AFTER = 60.0


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding moment."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y%m%d}"


def in_horizon(start: datetime, *, now: datetime) -> bool:
    return now - HORIZON_PAST <= start + WEEK and start <= now + HORIZON_AHEAD


def weeks_between(since: datetime, until: datetime) -> list[datetime]:
    weeks = []
    start = week_start(since)
    while start <= until:
        weeks.append(start)
        start += WEEK
    return weeks


def missing_weeks(moments: Iterable[datetime], *, now: datetime | None = None) -> set[datetime]:
    """Weeks of moments (and the week after each, made ready ahead of need) inside the horizon
    that this process does not know to exist."""
    now = now or datetime.now(UTC)
    wanted: set[datetime] = set()
    for start in {week_start(moment) for moment in moments}:
        wanted.update((start, start + WEEK))
    retry_from = time.monotonic() - _RETRY_AFTER
    return {
        start
        for start in wanted - _known_weeks
        if in_horizon(start, now=now) and _failed_at.get(start, retry_from) <= retry_from
    }


async def existing_weeks(connection: AsyncConnection) -> set[datetime]:
    """Week starts of the partitions audit_event has now."""
    rows = await connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": PARENT},
    )
    weeks = set()
    for (name,) in rows:
        suffix = name.removeprefix(f"{PARENT}_p")
        if suffix != name and suffix.isdigit():
            weeks.add(datetime.strptime(suffix, "%Y%m%d").replace(tzinfo=UTC))
    return weeks


async def ensure_weeks(engine: AsyncEngine, weeks: Iterable[datetime]) -> set[datetime]:
    """Create the partitions of weeks that do not exist yet; return the weeks now known.

    A week whose rows already sit in the default partition, or whose creation would wait on a
    long reader, is skipped (its rows keep going to the default partition) and retried later."""
    wanted = set(weeks)
    if not wanted - _known_weeks:
        return set(_known_weeks)
    async with engine.connect() as connection:
        _known_weeks.update(await existing_weeks(connection))
        await connection.commit()
        for start in sorted(wanted - _known_weeks):
            if await _default_holds(connection, start):
                # Rows of this week were stored before its partition existed: it stays in the
                # default partition (creating it now would fail after scanning that partition).
                _failed_at[start] = float("inf")
                continue
            try:
                async with connection.begin():
                    await connection.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK_KEY}
                    )
                    await connection.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS {partition_name(start)}"
                            f" PARTITION OF {PARENT} FOR VALUES FROM ('{start.isoformat()}')"
                            f" TO ('{(start + WEEK).isoformat()}')"
                        )
                    )
            except DBAPIError as exc:
                _failed_at[start] = time.monotonic()
                logger.warning(
                    "partitions.create_skipped",
                    extra={"week": start.date().isoformat(), "error": str(exc.orig)},
                )
                continue
            _known_weeks.add(start)
            logger.info("partitions.created", extra={"week": start.date().isoformat()})
    return set(_known_weeks)


async def _default_holds(connection: AsyncConnection, start: datetime) -> bool:
    found = await connection.execute(
        text(
            f"SELECT 1 FROM {DEFAULT_PARTITION} WHERE stage_at >= :start AND stage_at < :end"
            " LIMIT 1"
        ),
        {"start": start, "end": start + WEEK},
    )
    held = found.first() is not None
    await connection.commit()
    return held


async def prepare_for(engine: AsyncEngine, moments: Iterable[datetime]) -> None:
    """Create the partitions stage times need, before a transaction that stores several
    batches touches audit_event (a creation inside it would wait on its own lock)."""
    weeks = missing_weeks(moments)
    if weeks:
        await ensure_weeks(engine, weeks)


async def ensure_ahead(engine: AsyncEngine, *, now: datetime | None = None) -> None:
    """Make the recent weeks and the next ones ready (at start-up)."""
    now = now or datetime.now(UTC)
    await ensure_weeks(engine, weeks_between(now - STARTUP_PAST, now + STARTUP_AHEAD))


async def drop_weeks_before(engine: AsyncEngine, *, cutoff: datetime) -> tuple[int, list[str]]:
    """Drop every partition that lies wholly before cutoff; return the rows they held and their
    names. A partition whose lock cannot be had quickly is left for the row-by-row delete."""
    dropped: list[str] = []
    rows = 0
    async with engine.connect() as connection:
        weeks = sorted(await existing_weeks(connection))
        await connection.commit()
        for start in weeks:
            if start + WEEK > cutoff:
                break
            name = partition_name(start)
            try:
                async with connection.begin():
                    await connection.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_LOCK_KEY}
                    )
                    # Count under a lock that stops writes to this week only; the lock that
                    # stops the whole table is held just for the DROP.
                    await connection.execute(text(f"LOCK TABLE {name} IN SHARE MODE"))
                    count = (await connection.execute(text(f"SELECT count(*) FROM {name}"))).one()
                    await connection.execute(text(f"LOCK TABLE {PARENT} IN ACCESS EXCLUSIVE MODE"))
                    await connection.execute(text(f"DROP TABLE {name}"))
            except DBAPIError as exc:
                logger.warning(
                    "partitions.drop_skipped", extra={"partition": name, "error": str(exc.orig)}
                )
                continue
            _known_weeks.discard(start)
            rows += int(count[0])
            dropped.append(name)
    return rows, dropped
