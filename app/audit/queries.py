"""All SQL: idempotent batch inserts, the filtered timeline, single events, reader positions.

Functions take the session first and keywords after; they never commit (the caller owns the
transaction).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text, tuple_, union
from sqlalchemy import delete as sa_delete
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from app.audit import partitions
from app.audit.intake import QuarantineRow, conflict_row
from app.audit.models import AuditEvent, FileCheckpoint, PollCheckpoint, QuarantinedItem
from app.audit.normalize import canonical_group, group_aliases
from app.audit.request_rows import lock_requests, plan_insert
from app.audit.schemas import CHANGE_VERBS, Cursor, TimelineFilter
from app.errors import NotFound

logger = logging.getLogger(__name__)


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
# Every audit_event column the normaliser fills (all but id and ingested_at).
EVENT_COLUMNS = tuple(
    c.name
    for c in AuditEvent.__table__.columns
    if c.name not in ("id", "ingested_at", "is_request_row")
)
_JSON_COLUMNS = frozenset(c.name for c in AuditEvent.__table__.columns if isinstance(c.type, JSONB))
_ARRAY_COLUMNS = frozenset(
    c.name for c in AuditEvent.__table__.columns if isinstance(c.type, ARRAY)
)
_CONVERTED_COLUMNS = _JSON_COLUMNS | _ARRAY_COLUMNS
_COLUMN_LIST = ", ".join(EVENT_COLUMNS)


def _copy_value(column: str, value: Any) -> Any:
    """What COPY writes for a row's value: jsonb columns as the text prepare_batch made once
    (JsonObject/JsonArray), text[] columns in array syntax, other values as they are."""
    if value is None or column not in _CONVERTED_COLUMNS:
        return value
    if column in _ARRAY_COLUMNS:
        return _array_literal(value)
    text = getattr(value, "json_text", None)
    if text is not None:
        return text
    # Not from prepare_batch (a scalar body): stdlib json keeps big integers exact.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _array_literal(items: Sequence[str]) -> str:
    """A text[] in PostgreSQL's array syntax, every element quoted: what COPY's text format
    hands to array_in (~10x cheaper than the driver's generic list adapter)."""
    quoted = (item.replace("\\", "\\\\").replace('"', '\\"') for item in items)
    return "{" + ",".join(f'"{item}"' for item in quoted) + "}"


# Rows written to a COPY between two yields to the event loop: a 50,000-row batch must not
# hold the loop (and every other request) for seconds.
_COPY_ROWS_PER_YIELD = 500


async def driver_connection(session: AsyncSession) -> Any:
    """The psycopg connection under the session's (for COPY)."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # an open pool connection always has its driver connection
    return raw


async def _copy_to_staging(
    cursor: Any, *, staging: str, table: str, columns: str, rows: Iterable[Sequence[Any]]
) -> None:
    """COPY rows (each prefixed with its ordinal) into a per-connection temporary table shaped
    like table, emptied at commit."""
    await cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS"
        f" SELECT 0 AS ordinal, {columns} FROM {table} WITH NO DATA"
    )
    async with cursor.copy(f"COPY {staging} (ordinal, {columns}) FROM STDIN") as copy:
        for ordinal, values in enumerate(rows):
            await copy.write_row((ordinal, *values))
            if ordinal % _COPY_ROWS_PER_YIELD == _COPY_ROWS_PER_YIELD - 1:
                await asyncio.sleep(0)


def _engine_of(session: AsyncSession) -> AsyncEngine:
    bind = session.bind
    if isinstance(bind, AsyncEngine):
        return bind
    if bind is None:
        raise RuntimeError("insert_events needs a session bound to an engine or connection")
    return bind.engine


async def insert_events(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> tuple[int, list[tuple[int, int]]]:
    """Insert rows; an identity (cluster, audit_id, stage) already taken, in the database or
    earlier in rows, is skipped. Keep is_request_row on the most complete stage of each
    request. Return how many were new, and (index in rows, stored id) for each skipped row
    whose content differs from the stored one."""
    if not rows:
        return 0, []
    # Its own short transaction, before this one touches audit_event (app/audit/partitions);
    # callers storing several batches in one transaction call partitions.prepare_for first.
    await partitions.prepare_for(_engine_of(session), (row["stage_at"] for row in rows))
    requests = sorted({(row["cluster"], row["audit_id"]) for row in rows})
    clusters = [cluster for cluster, _ in requests]
    audit_ids = [audit_id for _, audit_id in requests]
    raw = await driver_connection(session)
    async with raw.cursor() as cursor:
        # Whoever stores stages of a request holds its lock until commit: what this reads of
        # the batch's requests cannot change before this transaction ends.
        await lock_requests(cursor, clusters=clusters, audit_ids=audit_ids)
        await cursor.execute(
            "SELECT a.cluster, a.audit_id, a.stage, a.id, a.stage_at, a.is_request_row"
            " FROM unnest(%s::text[], %s::text[]) AS k(cluster, audit_id)"
            " JOIN audit_event a ON a.cluster = k.cluster AND a.audit_id = k.audit_id",
            (clusters, audit_ids),
        )
        plan = plan_insert(rows, await cursor.fetchall())
        if plan.new:
            async with cursor.copy(
                f"COPY audit_event ({_COLUMN_LIST}, is_request_row) FROM STDIN"
            ) as copy:
                for count, index in enumerate(plan.new, start=1):
                    row = rows[index]
                    await copy.write_row(
                        (*[_copy_value(c, row[c]) for c in EVENT_COLUMNS], index in plan.flagged)
                    )
                    if count % _COPY_ROWS_PER_YIELD == 0:
                        await asyncio.sleep(0)
        if plan.superseded:
            await cursor.execute(
                "UPDATE audit_event a SET is_request_row = false"
                " FROM unnest(%s::bigint[], %s::timestamptz[]) AS s(id, stage_at)"
                " WHERE a.id = s.id AND a.stage_at = s.stage_at",
                (
                    [event_id for event_id, _ in plan.superseded],
                    [stage_at for _, stage_at in plan.superseded],
                ),
            )
        differing: list[tuple[int, int]] = []
        if plan.repeated:
            # Only rows whose identity was taken are compared (retries, reused IDs); what was
            # just inserted is among the stored rows, so a repeat within the batch is too.
            repeated = [rows[index] for index in plan.repeated]
            await cursor.execute(
                "SELECT k.ordinal, a.id FROM unnest(%s::int[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::text[], %s::text[])"
                " AS k(ordinal, cluster, audit_id, stage, raw, request_object, response_object)"
                " JOIN audit_event a"
                " ON a.cluster = k.cluster AND a.audit_id = k.audit_id AND a.stage = k.stage"
                " WHERE a.raw IS DISTINCT FROM k.raw::jsonb"
                " OR a.request_object IS DISTINCT FROM k.request_object::jsonb"
                " OR a.response_object IS DISTINCT FROM k.response_object::jsonb"
                " ORDER BY k.ordinal",
                (
                    list(plan.repeated),
                    [row["cluster"] for row in repeated],
                    [row["audit_id"] for row in repeated],
                    [row["stage"] for row in repeated],
                    *(
                        [_copy_value(column, row[column]) for row in repeated]
                        for column in ("raw", "request_object", "response_object")
                    ),
                ),
            )
            differing = [(ordinal, event_id) for ordinal, event_id in await cursor.fetchall()]
    return len(plan.new), differing


_QUARANTINE_COLUMNS = (
    "cluster", "source", "origin", "raw", "raw_sha256", "error", "is_redacted", "raw_sealed"
)  # fmt: skip
_QUARANTINE_LIST = ", ".join(_QUARANTINE_COLUMNS)


async def insert_quarantined(
    session: AsyncSession, rows: Sequence[QuarantineRow], *, cluster: str | None, source: str
) -> int:
    """Keep unusable items with their reason (bytes already kept from this sender are not
    kept twice); return how many items were quarantined."""
    if not rows:
        return 0
    # COPY into a staging table, then one INSERT ... SELECT in arrival order: the first copy of
    # repeated bytes wins, and nothing is compiled per row on the event loop.
    raw = await driver_connection(session)
    async with raw.cursor() as cursor:
        await _copy_to_staging(
            cursor,
            staging="incoming_quarantine",
            table="quarantined_item",
            columns=_QUARANTINE_LIST,
            rows=(
                (
                    cluster,
                    source,
                    row.origin,
                    row.raw,
                    row.digest,
                    row.error,
                    row.is_redacted,
                    row.sealed,
                )
                for row in rows
            ),  # fmt: skip
        )
        await cursor.execute(
            f"INSERT INTO quarantined_item ({_QUARANTINE_LIST}) SELECT {_QUARANTINE_LIST}"
            " FROM incoming_quarantine ORDER BY ordinal"
            " ON CONFLICT (source, cluster, raw_sha256) DO NOTHING"
        )
        # Emptied at commit anyway; a second call in the same transaction must not see these.
        await cursor.execute("DELETE FROM incoming_quarantine")
    return len(rows)


async def list_quarantined(
    session: AsyncSession,
    *,
    cluster: str | None,
    source: str | None,
    before_id: int | None,
    limit: int,
) -> Sequence[QuarantinedItem]:
    """Quarantined items, newest first, optionally of one cluster or source."""
    stmt = select(QuarantinedItem)
    if cluster is not None:
        stmt = stmt.where(QuarantinedItem.cluster == cluster)
    if source is not None:
        stmt = stmt.where(QuarantinedItem.source == source)
    if before_id is not None:
        stmt = stmt.where(QuarantinedItem.id < before_id)
    return (await session.scalars(stmt.order_by(QuarantinedItem.id.desc()).limit(limit))).all()


async def store_batch(
    session: AsyncSession,
    *,
    events: Sequence[dict[str, Any]],
    quarantined: Sequence[QuarantineRow],
    cluster: str | None,
    source: str,
) -> StoreResult:
    """Store a prepared batch and count the outcome. Exact repeats are duplicates; a different
    event under an identity already taken goes to the quarantine with the reason."""
    stored, differing = await insert_events(session, events)
    conflicts = [
        conflict_row(events[i], stored_as=f"event {event_id}") for i, event_id in differing
    ]
    if conflicts:
        logger.warning("store.audit_id_conflict", extra={"count": len(conflicts), "source": source})
    count = await insert_quarantined(
        session, [*quarantined, *conflicts], cluster=cluster, source=source
    )
    return StoreResult(
        stored=stored, duplicates=len(events) - stored - len(conflicts), quarantined=count
    )


def _group_condition(
    resource: str, group: str, columns: Columns | None = None
) -> ColumnElement[bool]:
    aliases = group_aliases(resource, canonical_group(resource, group))
    stored = func.coalesce((columns or _EVENT).api_group, "")
    return stored.in_(aliases)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _user_condition(users: Sequence[str], columns: Columns) -> ColumnElement[bool]:
    # "name*" is a prefix (LIKE 'name%', served by the text_pattern_ops indexes).
    exact = [u for u in users if not u.endswith("*")]
    prefixes = [_like_escape(u.rstrip("*")) + "%" for u in users if u.endswith("*")]
    ors: list[ColumnElement[bool]] = []
    for column in (columns.username, columns.impersonated_user):
        if exact:
            ors.append(column.in_(exact))
        ors += [column.like(p, escape="\\") for p in prefixes]
    return or_(*ors)


# The columns a filter reads: audit_event's, or a rollup's (the same names).
Columns = ReadOnlyColumnCollection[str, Any]
_EVENT: Columns = AuditEvent.__table__.c


def dimension_conditions(f: TimelineFilter, columns: Columns) -> list[ColumnElement[bool]]:
    """The filter's conditions on the columns a rollup keeps too (resource, namespace, user,
    verb, cluster, stage, status), on columns (audit_event's or a rollup's)."""
    conditions: list[ColumnElement[bool]] = []
    if f.resource:
        ors = []
        for value in f.resource:
            resource_group, _, sub = value.partition("/")
            # "networkpolicies" is any group; "networkpolicies.projectcalico.org" one group.
            resource, _, group = resource_group.partition(".")
            parts = [columns.resource == resource]
            if group:
                parts.append(_group_condition(resource, group, columns))
            if not sub:
                parts.append(columns.subresource.is_(None))
            elif sub != "*":
                parts.append(columns.subresource == sub)
            ors.append(and_(*parts))
        conditions.append(or_(*ors))
    if f.namespace:
        conditions.append(columns.namespace.in_(f.namespace))
    if f.user:
        conditions.append(_user_condition(f.user, columns))
    if f.stage:
        conditions.append(columns.stage.in_(f.stage))
    if f.verb:
        conditions.append(columns.verb.in_(f.verb))
    elif f.is_changes_only():
        conditions.append(columns.verb.in_(CHANGE_VERBS))
    if f.cluster:
        conditions.append(columns.cluster.in_(f.cluster))
    code = columns.response_code
    if f.status == "success":
        conditions.append(code < 400)
    elif f.status == "failure":
        conditions.append(code >= 400)
    elif f.status is not None and f.status.endswith("xx"):
        low = int(f.status[0]) * 100
        conditions.append(code.between(low, low + 99))
    elif f.status is not None:
        conditions.append(code == int(f.status))
    return conditions


def event_only_conditions(f: TimelineFilter) -> list[ColumnElement[bool]]:
    """The filter's conditions on what no rollup keeps (groups, the object-name substring)."""
    conditions: list[ColumnElement[bool]] = []
    if f.group:
        conditions.append(
            or_(
                AuditEvent.user_groups.overlap(f.group),
                AuditEvent.impersonated_groups.overlap(f.group),
            )
        )
    if f.q:
        conditions.append(AuditEvent.name.ilike(f"%{_like_escape(f.q)}%", escape="\\"))
    return conditions


def time_conditions(since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """stage_at within [since, until) (either bound may be open)."""
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(AuditEvent.stage_at >= since)
    if until is not None:
        conditions.append(AuditEvent.stage_at < until)
    return conditions


def export_conditions(f: TimelineFilter) -> list[ColumnElement[bool]]:
    """Every condition of f on audit_event (its cursor ignored): what an export selects."""
    return _filter_conditions(f.model_copy(update={"cursor": None}))


def _filter_conditions(f: TimelineFilter) -> list[ColumnElement[bool]]:
    conditions = [*dimension_conditions(f, _EVENT), *event_only_conditions(f)]
    if f.is_per_request():
        # Bare column (not IS TRUE): the partial indexes' predicate must match it literally.
        conditions.append(AuditEvent.is_request_row.expression)
    return conditions + time_conditions(f.effective_since(datetime.now(UTC)), f.until)


# What a listed row never shows: the bodies and the event as received (loading them for a page
# of 50 rows costs more than the rest of the row; touching them on a listed row is a bug).
_UNLISTED = tuple(
    defer(column, raiseload=True)
    for column in (
        AuditEvent.raw,
        AuditEvent.request_object,
        AuditEvent.response_object,
        AuditEvent.source_meta,
    )
)
# At most this many (column, user) ordered scans; past that (a prefix matching many users) the
# page is one scan over every match, still exact. Each scan is planned per weekly partition:
# 80 of them (kube-system's 40 service accounts, both columns) cost 60 ms of planning alone
# at 2M events (bench/scale.py).
MAX_USER_SCANS = 16
_USER_COLUMNS = ("username", "impersonated_user")


async def _prefix_users(session: AsyncSession, column: str, prefix: str) -> list[str] | None:
    """The distinct stored values of column starting with prefix, by a loose index scan of its
    text_pattern_ops index (one probe per value); None when there are more than
    MAX_USER_SCANS."""
    assert column in _USER_COLUMNS
    pattern = _like_escape(prefix) + "%"
    rows = await session.execute(
        text(
            "WITH RECURSIVE found(value) AS ("
            f" (SELECT {column} FROM audit_event WHERE {column} LIKE :pattern"
            f" ORDER BY {column} USING ~<~ LIMIT 1)"
            " UNION ALL"
            f" SELECT (SELECT {column} FROM audit_event WHERE {column} LIKE :pattern"
            f" AND {column} ~>~ found.value ORDER BY {column} USING ~<~ LIMIT 1)"
            " FROM found WHERE found.value IS NOT NULL)"
            " SELECT value FROM found WHERE value IS NOT NULL LIMIT :limit"
        ),
        {"pattern": pattern, "limit": MAX_USER_SCANS + 1},
    )
    values = [str(value) for (value,) in rows.all()]
    return values if len(values) <= MAX_USER_SCANS else None


async def _user_branches(
    session: AsyncSession, users: Sequence[str]
) -> list[ColumnElement[bool]] | None:
    """The user filter as one equality per (column, user): each an ordered scan of that
    column's (col, stage_at, id) index. None when that would be more than MAX_USER_SCANS."""
    branches: list[ColumnElement[bool]] = []
    for name in _USER_COLUMNS:
        column = _EVENT[name]
        values = [u for u in users if not u.endswith("*")]
        for prefix in (u.rstrip("*") for u in users if u.endswith("*")):
            found = await _prefix_users(session, name, prefix)
            if found is None:
                return None
            values += found
        branches += [column == value for value in dict.fromkeys(values)]
    return branches if len(branches) <= MAX_USER_SCANS else None


async def timeline(
    session: AsyncSession, f: TimelineFilter
) -> tuple[Sequence[AuditEvent], str | None]:
    """One page of matching events, newest first, and the cursor of the next page (or None).
    Only the listed columns are loaded (not the raw event nor the bodies)."""
    keyset: list[ColumnElement[bool]] = []
    if f.cursor:
        after = Cursor.decode(f.cursor)
        keyset.append(tuple_(AuditEvent.stage_at, AuditEvent.id) < (after.stage_at, after.id))
    newest = (AuditEvent.stage_at.desc(), AuditEvent.id.desc())
    stmt = select(AuditEvent).options(*_UNLISTED)
    branches = await _user_branches(session, f.user) if f.user else None
    if branches is not None:
        # "User or impersonated user": an OR over two columns cannot follow one index in time
        # order, so each (column, user) is its own ordered index scan with the page's LIMIT,
        # and the page is the newest of their union.
        others = [*_filter_conditions(f.model_copy(update={"user": []})), *keyset]
        scans = [
            select(AuditEvent.stage_at, AuditEvent.id)
            .where(*others, branch)
            .order_by(*newest)
            .limit(f.limit + 1)
            .subquery()
            for branch in branches
        ]
        if not scans:
            return [], None
        keys = union(*(select(scan.c.stage_at, scan.c.id) for scan in scans)).subquery()
        stmt = stmt.join(
            keys, and_(AuditEvent.id == keys.c.id, AuditEvent.stage_at == keys.c.stage_at)
        )
    else:
        stmt = stmt.where(*_filter_conditions(f), *keyset)
    rows = (await session.scalars(stmt.order_by(*newest).limit(f.limit + 1))).all()
    if len(rows) <= f.limit:
        return rows, None
    last = rows[f.limit - 1]
    return rows[: f.limit], Cursor(stage_at=last.stage_at, id=last.id).encode()


async def ping(connection: AsyncConnection) -> None:
    """Raise unless the database answers."""
    await connection.execute(text("SELECT 1"))


async def get_event(session: AsyncSession, event_id: int) -> AuditEvent:
    """The event with this id; raise NotFound otherwise."""
    event = await session.scalar(select(AuditEvent).where(AuditEvent.id == event_id))
    if event is None:
        raise NotFound(f"audit event {event_id} not found")
    return event


async def get_quarantined(session: AsyncSession, item_id: int) -> QuarantinedItem:
    """The quarantined item with this id; raise NotFound otherwise."""
    item = await session.get(QuarantinedItem, item_id)
    if item is None:
        raise NotFound(f"quarantined item {item_id} not found")
    return item


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


async def get_poll_checkpoints(
    session: AsyncSession, *, keys: Sequence[str]
) -> dict[str, PollCheckpoint]:
    """The stored poller checkpoints among keys, by key (absent keys were never polled)."""
    rows = await session.scalars(select(PollCheckpoint).where(PollCheckpoint.key.in_(keys)))
    return {row.key: row for row in rows}


async def save_poll_checkpoint(
    session: AsyncSession, *, key: str, cursor_at: datetime, newest_event_at: datetime | None
) -> None:
    """Advance a poller checkpoint (same transaction as its events); it never moves back."""
    stmt = pg_insert(PollCheckpoint).values(
        key=key, cursor_at=cursor_at, newest_event_at=newest_event_at
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "cursor_at": func.greatest(PollCheckpoint.cursor_at, stmt.excluded.cursor_at),
            # GREATEST ignores NULLs, so an unknown newest time keeps the stored one.
            "newest_event_at": func.greatest(
                PollCheckpoint.newest_event_at, stmt.excluded.newest_event_at
            ),
            "updated_at": func.now(),
        },
    )
    await session.execute(stmt)


async def try_lock_poller(session: AsyncSession, *, key: int) -> bool:
    """Take the session-level advisory lock of the active poller; False if another holds it.

    The lock lives as long as the session's connection, so bind the session to a dedicated one.
    """
    return bool(await session.scalar(select(func.pg_try_advisory_lock(key))))


async def unlock_poller(session: AsyncSession, *, key: int) -> None:
    """Release the poller lock taken with try_lock_poller on this connection."""
    await session.execute(select(func.pg_advisory_unlock(key)))


async def ping_database(session: AsyncSession) -> None:
    """Raise if the session's connection is gone (e.g. PostgreSQL restarted)."""
    await session.execute(select(func.now()))


# --- Dashboard: facet counts, histogram, object history, previous versions, export stream ---

# Responses that are a version of the object (the whole object, not a Status or a Scale).
_VERSION_SUBRESOURCES = ("status",)
_NON_VERSION_VERBS = ("list", "watch", "deletecollection")
_DELETE_VERBS = ("delete", "deletecollection")


@dataclass(frozen=True)
class ObjectKey:
    """One Kubernetes object across its events; namespace None for cluster-scoped objects."""

    cluster: str
    resource: str
    namespace: str | None
    name: str
    # Canonical API group ("" for core); None matches any group (a URL that named none).
    group: str | None = None


def _object_conditions(key: ObjectKey) -> list[ColumnElement[bool]]:
    # Cluster-scoped objects: objectRef has no namespace, or (some senders) an empty one.
    namespace = (
        or_(AuditEvent.namespace.is_(None), AuditEvent.namespace == "")
        if not key.namespace
        else AuditEvent.namespace == key.namespace
    )
    conditions = [
        AuditEvent.cluster == key.cluster,
        AuditEvent.resource == key.resource,
        namespace,
        AuditEvent.name == key.name,
    ]
    if key.group is not None:
        # A Calico projectcalico.org NetworkPolicy is not the Kubernetes one of that name.
        conditions.append(_group_condition(key.resource, key.group))
    return conditions


def _version_conditions() -> list[ColumnElement[bool]]:
    kind = AuditEvent.response_object["kind"].astext
    return [
        AuditEvent.response_object.is_not(None),
        func.jsonb_typeof(AuditEvent.response_object) == "object",
        or_(kind.is_(None), kind != "Status"),
        or_(AuditEvent.response_code.is_(None), AuditEvent.response_code < 400),
        or_(
            AuditEvent.subresource.is_(None),
            AuditEvent.subresource.in_(_VERSION_SUBRESOURCES),
        ),
        AuditEvent.verb.not_in(_NON_VERSION_VERBS),
    ]


def is_version(event: AuditEvent) -> bool:
    """True when the event's response body is a full version of its object (see SQL twin)."""
    body = event.response_object
    return (
        isinstance(body, dict)
        and body.get("kind") != "Status"
        and (event.response_code is None or event.response_code < 400)
        and (event.subresource is None or event.subresource in _VERSION_SUBRESOURCES)
        and event.verb not in _NON_VERSION_VERBS
    )


def object_key(event: AuditEvent) -> ObjectKey | None:
    """The object an event is about, or None (lists, events without resource or name)."""
    if not event.name or event.resource is None:
        return None
    group = canonical_group(event.resource, event.api_group)
    return ObjectKey(event.cluster, event.resource, event.namespace or None, event.name, group)


async def previous_version(session: AsyncSession, event: AuditEvent) -> AuditEvent | None:
    """The last stored event before this one whose response is a version of the same object."""
    key = object_key(event)
    if key is None:
        return None
    stmt = (
        select(AuditEvent)
        .where(
            *_object_conditions(key),
            *_version_conditions(),
            tuple_(AuditEvent.stage_at, AuditEvent.id) < (event.stage_at, event.id),
        )
        .order_by(AuditEvent.stage_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def unrecorded_changes_between(
    session: AsyncSession, event: AuditEvent, *, previous: AuditEvent
) -> int:
    """How many requests changed the object between previous and event without a recorded
    result (no version in the response, no failure code): what a diff between them may hide."""
    key = object_key(event)
    if key is None:
        return 0
    stmt = select(func.count(AuditEvent.audit_id.distinct())).where(
        *_object_conditions(key),
        tuple_(AuditEvent.stage_at, AuditEvent.id) > (previous.stage_at, previous.id),
        tuple_(AuditEvent.stage_at, AuditEvent.id) < (event.stage_at, event.id),
        AuditEvent.audit_id.not_in((event.audit_id, previous.audit_id)),
        AuditEvent.verb.in_(CHANGE_VERBS),
        # A refused request (4xx) changed nothing; a delete with a success code is a known
        # result; a server error (5xx) may or may not have been applied.
        AuditEvent.response_code.is_(None)
        | (AuditEvent.response_code >= 500)
        | and_(AuditEvent.response_code < 400, AuditEvent.verb.not_in(_DELETE_VERBS)),
        ~and_(*_version_conditions()),
        # Each request once, by its most complete stored stage.
        AuditEvent.is_request_row,
    )
    return int((await session.execute(stmt)).scalar_one())


async def object_events(
    session: AsyncSession, key: ObjectKey, *, cursor: str | None = None, limit: int = 50
) -> tuple[Sequence[AuditEvent], str | None]:
    """One page of an object's events, newest first, and the cursor of the older page."""
    stmt = select(AuditEvent).where(*_object_conditions(key))
    if cursor:
        after = Cursor.decode(cursor)
        stmt = stmt.where(tuple_(AuditEvent.stage_at, AuditEvent.id) < (after.stage_at, after.id))
    stmt = stmt.order_by(AuditEvent.stage_at.desc(), AuditEvent.id.desc()).limit(limit + 1)
    rows = (await session.scalars(stmt)).all()
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Cursor(stage_at=last.stage_at, id=last.id).encode()


EXPORT_FIELDS = (
    "id",
    "stage_at",
    "cluster",
    "verb",
    "resource",
    "subresource",
    "namespace",
    "name",
    "username",
    "impersonated_user",
    "user_groups",
    "source_ips",
    "user_agent",
    "response_code",
    "authz_decision",
    "audit_id",
    "stage",
)


async def stream_export_rows(
    session: AsyncSession, f: TimelineFilter, *, batch_size: int = 2000
) -> AsyncGenerator[dict[str, Any]]:
    """Every matching event's export columns, newest first, through a server-side cursor."""
    columns = [getattr(AuditEvent, field).label(field) for field in EXPORT_FIELDS]
    stmt = (
        select(*columns)
        .where(*export_conditions(f))
        .order_by(AuditEvent.stage_at.desc(), AuditEvent.id.desc())
        .execution_options(yield_per=batch_size)
    )
    result = await session.stream(stmt)
    async for partition in result.partitions():
        for row in partition:
            yield dict(row._mapping)


async def delete_older_than(
    engine: AsyncEngine, *, cutoff: datetime, batch: int = 10_000
) -> tuple[int, int]:
    """Delete events with stage time before cutoff, and quarantined items received before it;
    return both counts. Weeks wholly before cutoff are dropped as partitions (milliseconds);
    the rest (the week cutoff falls in, the default partition) in batches that each commit
    (short locks on a live table)."""
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)

    async def delete_batches(model: type[AuditEvent] | type[QuarantinedItem], column: Any) -> int:
        key = tuple_(model.id, column)
        total = 0
        while True:
            keys = select(model.id, column).where(column < cutoff).limit(batch)
            async with sessionmaker.begin() as session:
                result = await session.execute(sa_delete(model).where(key.in_(keys)))
            count = int(getattr(result, "rowcount", 0) or 0)
            total += count
            if count < batch:
                return total

    dropped, names = await partitions.drop_weeks_before(engine, cutoff=cutoff)
    events = dropped + await delete_batches(AuditEvent, AuditEvent.stage_at)
    items = await delete_batches(QuarantinedItem, QuarantinedItem.received_at)
    logger.info(
        "retention.deleted",
        extra={
            "cutoff": cutoff.isoformat(),
            "events": events,
            "quarantined": items,
            "partitions_dropped": names,
        },
    )
    return events, items
