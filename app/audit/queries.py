"""All SQL: idempotent batch inserts, the filtered timeline, single events, reader positions.

Functions take the session first and keywords after; they never commit (the caller owns the
transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.intake import QuarantineRow
from app.audit.models import AuditEvent, FileCheckpoint, QuarantinedItem
from app.audit.schemas import Cursor, TimelineFilter
from app.errors import NotFound


@dataclass(frozen=True)
class StoreResult:
    stored: int
    duplicates: int
    quarantined: int

    def __add__(self, other: StoreResult) -> StoreResult:
        return StoreResult(
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.quarantined + other.quarantined,
        )


EMPTY_RESULT = StoreResult(0, 0, 0)
# Keeps one INSERT below PostgreSQL's 65,535 bind parameters (about 36 columns per row).
_INSERT_CHUNK = 1000


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping (cluster, audit_id, stage) already stored; return how many new."""
    inserted = 0
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        stmt = (
            pg_insert(AuditEvent)
            .values(list(chunk))
            .on_conflict_do_nothing(index_elements=["cluster", "audit_id", "stage"])
            .returning(AuditEvent.id)
        )
        inserted += len((await session.execute(stmt)).all())
    return inserted


async def insert_quarantined(
    session: AsyncSession, rows: Sequence[QuarantineRow], *, cluster: str | None, source: str
) -> int:
    """Keep unusable items with their reason; return how many."""
    if not rows:
        return 0
    await session.execute(
        pg_insert(QuarantinedItem).values(
            [
                {
                    "cluster": cluster,
                    "source": source,
                    "origin": row.origin,
                    "raw": row.raw,
                    "error": row.error,
                    "is_redacted": row.is_redacted,
                }
                for row in rows
            ]
        )
    )
    return len(rows)


async def store_batch(
    session: AsyncSession,
    *,
    events: Sequence[dict[str, Any]],
    quarantined: Sequence[QuarantineRow],
    cluster: str | None,
    source: str,
) -> StoreResult:
    """Store a prepared batch (events + quarantine) and count the outcome."""
    stored = await insert_events(session, events)
    count = await insert_quarantined(session, quarantined, cluster=cluster, source=source)
    return StoreResult(stored=stored, duplicates=len(events) - stored, quarantined=count)


def _filter_conditions(f: TimelineFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if f.resource:
        ors = []
        for value in f.resource:
            resource, _, sub = value.partition("/")
            if not sub:
                ors.append(and_(AuditEvent.resource == resource, AuditEvent.subresource.is_(None)))
            elif sub == "*":
                ors.append(AuditEvent.resource == resource)
            else:
                ors.append(and_(AuditEvent.resource == resource, AuditEvent.subresource == sub))
        conditions.append(or_(*ors))
    if f.namespace:
        conditions.append(AuditEvent.namespace.in_(f.namespace))
    if f.user:
        conditions.append(
            or_(AuditEvent.username.in_(f.user), AuditEvent.impersonated_user.in_(f.user))
        )
    if f.verb:
        conditions.append(AuditEvent.verb.in_(f.verb))
    if f.cluster:
        conditions.append(AuditEvent.cluster.in_(f.cluster))
    if f.since is not None:
        conditions.append(AuditEvent.stage_at >= f.since)
    if f.until is not None:
        conditions.append(AuditEvent.stage_at < f.until)
    if f.status == "success":
        conditions.append(AuditEvent.response_code < 400)
    elif f.status == "failure":
        conditions.append(AuditEvent.response_code >= 400)
    elif f.status is not None and f.status.endswith("xx"):
        low = int(f.status[0]) * 100
        conditions.append(AuditEvent.response_code.between(low, low + 99))
    elif f.status is not None:
        conditions.append(AuditEvent.response_code == int(f.status))
    if f.q:
        escaped = f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(AuditEvent.name.ilike(f"%{escaped}%", escape="\\"))
    return conditions


async def timeline(
    session: AsyncSession, f: TimelineFilter
) -> tuple[Sequence[AuditEvent], str | None]:
    """One page of matching events, newest first, and the cursor of the next page (or None)."""
    stmt = select(AuditEvent).where(*_filter_conditions(f))
    if f.cursor:
        after = Cursor.decode(f.cursor)
        stmt = stmt.where(tuple_(AuditEvent.stage_at, AuditEvent.id) < (after.stage_at, after.id))
    stmt = stmt.order_by(AuditEvent.stage_at.desc(), AuditEvent.id.desc()).limit(f.limit + 1)
    rows = (await session.scalars(stmt)).all()
    if len(rows) <= f.limit:
        return rows, None
    last = rows[f.limit - 1]
    return rows[: f.limit], Cursor(stage_at=last.stage_at, id=last.id).encode()


async def get_event(session: AsyncSession, event_id: int) -> AuditEvent:
    """The event with this id; raise NotFound otherwise."""
    event = await session.get(AuditEvent, event_id)
    if event is None:
        raise NotFound(f"audit event {event_id} not found")
    return event


async def count_events(session: AsyncSession) -> int:
    """How many events are stored (all clusters)."""
    return int((await session.scalar(select(func.count()).select_from(AuditEvent))) or 0)


async def get_file_checkpoint(session: AsyncSession, *, path: str) -> FileCheckpoint | None:
    """Where a followed file was left, if it was followed before."""
    return await session.get(FileCheckpoint, path)


async def save_file_checkpoint(
    session: AsyncSession, *, path: str, cluster: str, inode: int, offset: int
) -> None:
    """Record how far a followed file has been stored (same transaction as its events)."""
    stmt = pg_insert(FileCheckpoint).values(path=path, cluster=cluster, inode=inode, offset=offset)
    stmt = stmt.on_conflict_do_update(
        index_elements=["path"],
        set_={"cluster": cluster, "inode": inode, "offset": offset, "updated_at": func.now()},
    )
    await session.execute(stmt)


async def delete_file_checkpoint(session: AsyncSession, *, path: str) -> None:
    """Forget a followed file's position."""
    await session.execute(delete(FileCheckpoint).where(FileCheckpoint.path == path))
