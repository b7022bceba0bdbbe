"""The timeline's histogram, totals and facet counts: exact, from the rollup where it can
answer, else from the events.

event_rollup_hourly (hour x cluster x verb x stage x code) holds exact stage-event and request
counts, kept by triggers on audit_event in the ingest transaction (migration 2026-11-28-2230).
A query over a time range reads the rollup for the whole hours inside it and audit_event for
the partial hours at its edges (at most two hours, through the (stage_at, id) index), so counts
are exact for any range. Filters and facets on what the rollup does not keep (namespace,
resource, user, group, name) are counted from the events: exactly when at most FACET_SAMPLE
match, else over the newest FACET_SAMPLE only, and the result says so and how many matched
when that is known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    delete,
    func,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent, event_rollup_hourly
from app.audit.queries import (
    dimension_conditions,
    event_only_conditions,
    time_conditions,
)
from app.audit.schemas import TimelineFilter

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
# Ranges at least this long get whole-hour bars (read from the rollups); shorter ones are
# counted from the events in finer bars.
HOURLY_BARS_FROM = timedelta(hours=12)
# Facets the rollup does not keep are counted from at most this many newest matching events
# (read from the covering indexes alone), groups from fewer (each costs a row visit).
FACET_SAMPLE = 20_000
GROUP_FACET_SAMPLE = 2_000
# Facet name (a TimelineFilter list field) -> the audit_event column it counts.
FACET_COLUMNS = {
    "resource": "resource",
    "namespace": "namespace",
    "user": "username",
    "verb": "verb",
    "cluster": "cluster",
    "stage": "stage",
}
# Facets the rollup keeps (counted exactly from it when it keeps every other filter too).
ROLLUP_FACETS = ("verb", "cluster", "stage")


@dataclass(frozen=True)
class Bucket:
    """One histogram bar: [start, end) with how many events and how many failed."""

    start: datetime
    end: datetime
    count: int
    failures: int


@dataclass(frozen=True)
class Sampled:
    """A facet counted over the newest `newest` matching events only; `matching`: how many
    matched in all, when known."""

    newest: int
    matching: int | None


@dataclass(frozen=True)
class Facets:
    """Per facet, its most frequent values with their counts: exact over every matching event,
    except the facets in sampled."""

    counts: dict[str, list[tuple[str, int]]]
    sampled: dict[str, Sampled] = field(default_factory=dict)


def floor_hour(at: datetime) -> datetime:
    """The start of at's hour (UTC)."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    """The first hour boundary at or after at."""
    floor = floor_hour(at)
    return floor if floor == at else floor + HOUR


def is_rollup_filter(f: TimelineFilter) -> bool:
    """True when the rollup keeps every dimension f filters on (cluster, verb, stage, status,
    time, changes only, per request)."""
    return not (f.resource or f.namespace or f.user or f.group or f.q)


def _positions(selected: list[Any]) -> list[ColumnElement[Any]]:
    # GROUP BY 1, 2, ...: the selected columns, whatever their expressions.
    return [literal_column(str(i)) for i in range(1, len(selected) + 1)]


@dataclass(frozen=True)
class _Range:
    """[start, end): whole hours [hours_from, hours_to) from a rollup, the rest from events."""

    start: datetime | None
    end: datetime | None

    def parts(self) -> tuple[tuple[datetime | None, datetime | None] | None, list[Any]]:
        """The rollup's hour range (None: no whole hour), and the events' edge slices."""
        start, end = self.start, self.end
        hours_from = ceil_hour(start) if start is not None else None
        hours_to = floor_hour(end) if end is not None else None
        if hours_from is not None and hours_to is not None and hours_from >= hours_to:
            return None, [(start, end)]
        edges = []
        if start is not None and hours_from is not None and start < hours_from:
            edges.append((start, hours_from))
        if end is not None and hours_to is not None and hours_to < end:
            edges.append((hours_to, end))
        return (hours_from, hours_to), edges


def _sources(
    f: TimelineFilter,
    span: _Range,
    columns: list[str],
    *,
    bucket: Any = None,
) -> Select[Any]:
    """UNION ALL of (columns..., n), or with bucket (columns..., bucket, n, bad): the rollup
    over span's whole hours, and events at its edges, both under f's dimension filters
    (counted per request or per stage-event)."""
    hours, edges = span.parts()
    parts: list[Select[Any]] = []
    if hours is not None:
        c = event_rollup_hourly.c
        n = func.sum(c.requests if f.is_per_request() else c.stage_events)
        where = dimension_conditions(f, c)
        if hours[0] is not None:
            where.append(c.hour >= hours[0])
        if hours[1] is not None:
            where.append(c.hour < hours[1])
        selected = [c[name].label(name) for name in columns]
        counted = [n.label("n")]
        if bucket is not None:
            selected.append(bucket(c.hour).label("bucket"))
            counted.append(n.filter(c.response_code >= 400).label("bad"))
        parts.append(select(*selected, *counted).where(*where).group_by(*_positions(selected)))
    for since, until in edges:
        e = AuditEvent.__table__.c
        where = [*dimension_conditions(f, e), *time_conditions(since, until)]
        if f.is_per_request():
            where.append(AuditEvent.is_request_row.expression)
        selected = [e[name].label(name) for name in columns]
        counted = [func.count().label("n")]
        if bucket is not None:
            selected.append(bucket(e.stage_at).label("bucket"))
            counted.append(func.count().filter(e.response_code >= 400).label("bad"))
        stmt = select(*selected, *counted).where(*where)
        parts.append(stmt.group_by(*_positions(selected)) if selected else stmt)
    # span.parts() gives whole hours, or else at least one edge: never nothing.
    assert parts
    return parts[0] if len(parts) == 1 else union_all(*parts).subquery().select()


async def matching_count(session: AsyncSession, f: TimelineFilter, *, now: datetime) -> int:
    """How many events (or requests, per f) match f exactly; f must be a rollup filter."""
    if not is_rollup_filter(f):
        raise ValueError("the rollup does not keep every dimension this filter reads")
    span = _Range(f.effective_since(now), f.until)
    source = _sources(f, span, []).subquery()
    return int(await session.scalar(select(func.coalesce(func.sum(source.c.n), 0))) or 0)


def _by_others(
    f: TimelineFilter, facets: tuple[str, ...]
) -> list[tuple[TimelineFilter, list[str]]]:
    # Each facet ignores its own filter; facets whose "other filters" are equal share a query.
    groups: dict[str, tuple[TimelineFilter, list[str]]] = {}
    for facet in facets:
        others = f.model_copy(update={facet: [], "cursor": None})
        groups.setdefault(others.model_dump_json(), (others, []))[1].append(facet)
    return list(groups.values())


async def facet_counts(
    session: AsyncSession, f: TimelineFilter, *, now: datetime, limit: int = 50
) -> Facets:
    """Per facet, its most frequent values among the events matching all the *other* filters
    (so a picker shows the alternatives)."""
    counts: dict[str, list[tuple[str, int]]] = {facet: [] for facet in (*FACET_COLUMNS, "group")}
    sampled: dict[str, Sampled] = {}
    from_events: list[str] = []
    for others, facets in _by_others(f, (*FACET_COLUMNS, "group")):
        rollup_facets = [x for x in facets if x in ROLLUP_FACETS]
        if rollup_facets and is_rollup_filter(others):
            counts.update(await _rollup_facets(session, others, rollup_facets, now=now))
            facets = [x for x in facets if x not in rollup_facets]
        if facets:
            from_events += facets
    for others, facets in _by_others(f, tuple(from_events)):
        matching = (
            await matching_count(session, others, now=now) if is_rollup_filter(others) else None
        )
        found, partial = await _event_facets(session, others, facets, now=now, matching=matching)
        counts.update(found)
        sampled.update(partial)
    top = {
        facet: sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:limit]
        for facet, pairs in counts.items()
    }
    return Facets(top, sampled)


async def _rollup_facets(
    session: AsyncSession, f: TimelineFilter, facets: list[str], *, now: datetime
) -> dict[str, list[tuple[str, int]]]:
    names = [FACET_COLUMNS[facet] for facet in facets]
    source = _sources(f, _Range(f.effective_since(now), f.until), names).subquery()
    columns = [source.c[name] for name in names]
    flags = [func.grouping(column) for column in columns]
    stmt = select(*columns, *flags, func.sum(source.c.n)).group_by(func.grouping_sets(*columns))
    counts: dict[str, list[tuple[str, int]]] = {facet: [] for facet in facets}
    for row in (await session.execute(stmt)).all():
        values, grouped, n = row[: len(columns)], row[len(columns) : -1], row[-1]
        for facet, value, flag in zip(facets, values, grouped, strict=True):
            if flag == 0 and value is not None and n:
                counts[facet].append((str(value), int(n)))
    return counts


def _event_conditions(f: TimelineFilter, *, now: datetime) -> list[ColumnElement[bool]]:
    conditions = [
        *dimension_conditions(f, AuditEvent.__table__.c),
        *event_only_conditions(f),
        *time_conditions(f.effective_since(now), f.until),
    ]
    if f.is_per_request():
        conditions.append(AuditEvent.is_request_row.expression)
    return conditions


async def _event_facets(
    session: AsyncSession,
    f: TimelineFilter,
    facets: list[str],
    *,
    now: datetime,
    matching: int | None,
) -> tuple[dict[str, list[tuple[str, int]]], dict[str, Sampled]]:
    """Counts of facets over the events matching f (matching: how many, when known): over all
    of them when at most the facet's sample size, else over the newest sample size only."""
    e = AuditEvent.__table__.c
    conditions = _event_conditions(f, now=now)
    newest = (e.stage_at.desc(), e.id.desc())
    counts: dict[str, list[tuple[str, int]]] = {}
    sampled: dict[str, Sampled] = {}
    plain = [x for x in facets if x != "group"]
    if plain:
        # Read from the covering indexes alone (no row is visited). One row past the sample
        # tells, in the same scan, whether more matched (when the count is not known).
        position = func.row_number().over(order_by=newest)
        recent = (
            select(*(e[FACET_COLUMNS[x]].label(x) for x in plain), position.label("position"))
            .where(*conditions)
            .order_by(*newest)
            .limit(FACET_SAMPLE + 1)
            .subquery()
        )
        columns = [recent.c[x] for x in plain]
        flags = [func.grouping(column) for column in columns]
        in_sample = recent.c.position <= FACET_SAMPLE
        stmt = select(
            *columns, *flags, func.count().filter(in_sample), func.count().filter(~in_sample)
        ).group_by(func.grouping_sets(*columns, ()))
        counts.update({x: [] for x in plain})
        more = False
        for row in (await session.execute(stmt)).all():
            values, grouped = row[: len(columns)], row[len(columns) : -2]
            n, beyond = row[-2], row[-1]
            if all(flag == 1 for flag in grouped):
                more = beyond > 0  # the empty grouping set: every row read
                continue
            for facet, value, flag in zip(plain, values, grouped, strict=True):
                if flag == 0 and value is not None and n:
                    counts[facet].append((str(value), int(n)))
        if more if matching is None else matching > FACET_SAMPLE:
            sampled.update({x: Sampled(FACET_SAMPLE, matching) for x in plain})
    if "group" in facets:
        # Groups are arrays outside the covering indexes: each costs a row visit, so they are
        # counted over fewer newest events.
        recent = (
            select(e.user_groups.label("groups"))
            .where(*conditions)
            .order_by(*newest)
            .limit(GROUP_FACET_SAMPLE)
            .subquery()
        )
        group = func.unnest(recent.c.groups).table_valued("value").render_derived()
        stmt = select(group.c.value, func.count()).select_from(recent).join(group, text("true"))
        rows = (await session.execute(stmt.group_by(group.c.value))).all()
        counts["group"] = [(str(row[0]), int(row[1])) for row in rows if row[0] is not None]
        if await _more_than(session, conditions, GROUP_FACET_SAMPLE, known=matching):
            sampled["group"] = Sampled(GROUP_FACET_SAMPLE, matching)
    return counts, sampled


async def _more_than(
    session: AsyncSession, conditions: list[ColumnElement[bool]], n: int, *, known: int | None
) -> bool:
    """True when more than n events match conditions (known: the count, when known)."""
    if known is not None:
        return known > n
    e = AuditEvent.__table__.c
    beyond = (
        select(e.id).where(*conditions).order_by(e.stage_at.desc(), e.id.desc()).offset(n).limit(1)
    )
    return (await session.scalar(beyond)) is not None


async def histogram(
    session: AsyncSession, f: TimelineFilter, *, now: datetime, bars: int = 48
) -> list[Bucket]:
    """Events (or requests) per time bucket over the filter's range (or the matching events'
    own span), exact. Ranges of HOURLY_BARS_FROM or more get bars of whole hours."""
    f = f.model_copy(update={"cursor": None})
    start = f.effective_since(now)
    end = f.until or (now if f.window else None)
    rollup = is_rollup_filter(f)
    if start is None or end is None:
        first, last = await _span(session, f, rollup, start=start, end=end, now=now)
        if first is None or last is None:
            return []
        start = start or first
        end = end or last
    if end <= start:
        return []
    if not rollup or end - start < HOURLY_BARS_FROM:
        return await _event_histogram(session, f, start=start, end=end, bars=bars)
    origin = floor_hour(start)
    hours = -(-(end - origin) // HOUR)
    width = HOUR * -(-hours // bars)
    seconds = width.total_seconds()

    def bucket(column: Any) -> ColumnElement[int]:
        return func.floor(func.extract("epoch", column - origin) / seconds).cast(Integer)

    source = _sources(f, _Range(start, end), [], bucket=bucket).subquery()
    stmt = select(source.c.bucket, func.sum(source.c.n), func.sum(source.c.bad)).group_by(
        source.c.bucket
    )
    counts = {
        int(b): (int(n or 0), int(bad or 0)) for b, n, bad in (await session.execute(stmt)).all()
    }
    total_bars = -(-(end - origin) // width)
    return [
        Bucket(
            start=max(start, origin + width * i),
            end=min(origin + width * (i + 1), end),
            count=counts.get(i, (0, 0))[0],
            failures=counts.get(i, (0, 0))[1],
        )
        for i in range(total_bars)
    ]


async def _span(
    session: AsyncSession,
    f: TimelineFilter,
    rollup: bool,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> tuple[datetime | None, datetime | None]:
    """The first and last+1 instants of the matching data: whole hours from a rollup, else the
    events' own times."""
    if not rollup:
        first, last = (
            await session.execute(
                select(func.min(AuditEvent.stage_at), func.max(AuditEvent.stage_at)).where(
                    *_event_conditions(f, now=now)
                )
            )
        ).one()
        return first, (last + timedelta(seconds=1)) if last is not None else None
    c = event_rollup_hourly.c
    n = c.requests if f.is_per_request() else c.stage_events
    where = [*dimension_conditions(f, c), n > 0]
    if start is not None:
        where.append(c.hour >= floor_hour(start))
    if end is not None:
        where.append(c.hour < end)
    first, last = (
        await session.execute(select(func.min(c.hour), func.max(c.hour)).where(*where))
    ).one()
    if first is None or last is None:
        return None, None
    return (max(first, start) if start else first), (min(last + HOUR, end) if end else last + HOUR)


async def _event_histogram(
    session: AsyncSession, f: TimelineFilter, *, start: datetime, end: datetime, bars: int
) -> list[Bucket]:
    width = max((end - start) / bars, timedelta(seconds=1))
    offset = func.extract("epoch", AuditEvent.stage_at - start) / width.total_seconds()
    index = func.least(func.floor(offset).cast(Integer), bars - 1).label("bucket")
    conditions = [
        *dimension_conditions(f, AuditEvent.__table__.c),
        *event_only_conditions(f),
        *time_conditions(start, end),
    ]
    if f.is_per_request():
        conditions.append(AuditEvent.is_request_row.expression)
    stmt = (
        select(index, func.count(), func.count().filter(AuditEvent.response_code >= 400))
        .where(*conditions)
        .group_by(index)
    )
    counts = {int(b): (int(n), int(bad)) for b, n, bad in (await session.execute(stmt)).all()}
    total_bars = min(bars, max(1, -(-(end - start) // width)))
    return [
        Bucket(
            start=start + width * i,
            end=min(start + width * (i + 1), end),
            count=counts.get(i, (0, 0))[0],
            failures=counts.get(i, (0, 0))[1],
        )
        for i in range(total_bars)
    ]


async def delete_rollups_before(session: AsyncSession, *, cutoff: datetime) -> None:
    """Forget the rollup hours before cutoff (hour-aligned): prune calls it once the events
    before cutoff are gone (dropping a partition fires no trigger)."""
    if cutoff != floor_hour(cutoff):
        raise ValueError(f"cutoff {cutoff.isoformat()} is not at the start of an hour")
    await session.execute(delete(event_rollup_hourly).where(event_rollup_hourly.c.hour < cutoff))
    logger.info("rollups.deleted", extra={"cutoff": cutoff.isoformat()})
