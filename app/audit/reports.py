"""Change reports: every object created, modified or deleted in a window T1 -> T2, with who,
when, how many changes and the net difference between its state at T1 and at T2.

Streams the window's write events in object order (server-side cursor) and keeps one object
at a time, so memory stays flat however many events the window holds. A state that the record
does not establish is reported as unknown, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.bundle import BundleWriter
from app.audit.diff import SideBySideDiff, side_by_side
from app.audit.export import UTF8_BOM, csv_cell, csv_line
from app.audit.export import csv_header as export_csv_header
from app.audit.export import csv_row as export_csv_row
from app.audit.models import AuditEvent
from app.audit.normalize import canonical_group, group_aliases
from app.audit.queries import is_version, stream_export_rows
from app.audit.request_rows import STAGE_RANK
from app.audit.schemas import TimelineFilter

WRITE_VERBS = ("create", "update", "patch", "delete")
# Named selections of resources: (resource, groups it may come through).
RESOURCE_GROUPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "network-policy": (
        ("networkpolicies", ("networking.k8s.io", "extensions")),
        ("networkpolicies", ("projectcalico.org", "crd.projectcalico.org")),
        ("globalnetworkpolicies", ("projectcalico.org", "crd.projectcalico.org")),
        ("stagednetworkpolicies", ("projectcalico.org", "crd.projectcalico.org")),
        ("stagedglobalnetworkpolicies", ("projectcalico.org", "crd.projectcalico.org")),
        ("networksets", ("projectcalico.org", "crd.projectcalico.org")),
        ("globalnetworksets", ("projectcalico.org", "crd.projectcalico.org")),
        ("tiers", ("projectcalico.org", "crd.projectcalico.org")),
    ),
    "rbac": tuple(
        (resource, ("rbac.authorization.k8s.io",))
        for resource in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
    ),
    "workload-identity": (
        ("serviceaccounts", ("",)),
        ("namespaces", ("",)),
        ("pods", ("",)),
        ("endpoints", ("",)),
    ),
}
State = Literal["known", "absent", "unknown"]
Change = Literal["created", "modified", "deleted", "created and deleted", "unknown"]
REPORT_COLUMNS = (
    "cluster",
    "group",
    "resource",
    "namespace",
    "name",
    "change",
    "changes",
    "failed_attempts",
    "users",
    "first_change_at",
    "last_change_at",
    "state_at_t1",
    "state_at_t2",
    "lines_added",
    "lines_removed",
    "lines_changed",
    "history_path",
)


@dataclass(frozen=True)
class ReportQuery:
    """What a report covers; its dict form goes into the signed manifest."""

    cluster: str
    since: datetime
    until: datetime
    namespace: str | None = None
    resource_group: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "since": iso(self.since),
            "until": iso(self.until),
            "namespace": self.namespace,
            "resource_group": self.resource_group,
        }


@dataclass
class ObjectChange:
    cluster: str
    group: str
    resource: str
    namespace: str | None
    name: str
    changes: int = 0
    # Of changes, how many have a recorded result (the others may or may not have applied).
    recorded_changes: int = 0
    failed_attempts: int = 0
    users: list[str] = field(default_factory=list)
    first_change_at: datetime | None = None
    last_change_at: datetime | None = None
    state_at_t1: State = "unknown"
    state_at_t2: State = "unknown"
    before: Any = None
    after: Any = None
    diff: SideBySideDiff | None = None
    event_ids: list[int] = field(default_factory=list)

    @property
    def change(self) -> Change:
        if self.changes == 0:
            return "unknown"
        if self.recorded_changes == 0:
            # Every write's result is unrecorded: not even that something changed is known.
            return "unknown"
        if self.state_at_t1 == "absent" and self.state_at_t2 == "absent":
            return "created and deleted"
        if self.state_at_t1 == "absent":
            return "created"
        if self.state_at_t2 == "absent":
            return "deleted"
        return "modified"

    @property
    def history_path(self) -> str:
        parts = ["objects", self.cluster]
        if self.namespace:
            parts += ["namespaces", self.namespace]
        parts += [f"{self.resource}.{self.group}" if self.group else self.resource, self.name]
        return "/" + "/".join(quote(p, safe="") for p in parts)

    def record(self) -> dict[str, Any]:
        """The report's columns as JSON-ready values (NDJSON adds the diff lines)."""
        diff = self.diff
        return {
            "cluster": self.cluster,
            "group": self.group,
            "resource": self.resource,
            "namespace": self.namespace,
            "name": self.name,
            "change": self.change,
            "changes": self.changes,
            "failed_attempts": self.failed_attempts,
            "users": self.users,
            "first_change_at": iso(self.first_change_at),
            "last_change_at": iso(self.last_change_at),
            "state_at_t1": self.state_at_t1,
            "state_at_t2": self.state_at_t2,
            "lines_added": diff.added if diff else None,
            "lines_removed": diff.removed if diff else None,
            "lines_changed": diff.changed if diff else None,
            "history_path": self.history_path,
        }


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _selection(query: ReportQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        AuditEvent.cluster == query.cluster,
        AuditEvent.verb.in_(WRITE_VERBS),
        AuditEvent.name.is_not(None),
        AuditEvent.resource.is_not(None),
        or_(AuditEvent.subresource.is_(None), AuditEvent.subresource == "status"),
    ]
    if query.namespace is not None:
        conditions.append(AuditEvent.namespace == query.namespace)
    if query.resource_group is not None:
        conditions.append(
            or_(
                *(
                    and_(
                        AuditEvent.resource == resource,
                        func.coalesce(AuditEvent.api_group, "").in_(groups),
                    )
                    for resource, groups in RESOURCE_GROUPS[query.resource_group]
                )
            )
        )
    return conditions


async def _state_before(session: AsyncSession, change: ObjectChange, at: datetime) -> None:
    """The object's state at `at` from the last successful write stored before it."""
    namespace = (
        AuditEvent.namespace == change.namespace
        if change.namespace
        else or_(
            AuditEvent.namespace.is_(None),
            AuditEvent.namespace == "",
            AuditEvent.resource == "namespaces",
        )
    )
    stmt = (
        select(AuditEvent)
        .where(
            AuditEvent.cluster == change.cluster,
            AuditEvent.resource == change.resource,
            namespace,
            AuditEvent.name == change.name,
            func.coalesce(AuditEvent.api_group, "").in_(
                group_aliases(change.resource, change.group)
            ),
            AuditEvent.verb.in_(WRITE_VERBS),
            AuditEvent.stage.in_(("ResponseComplete", "Panic")),
            or_(AuditEvent.subresource.is_(None), AuditEvent.subresource == "status"),
            or_(AuditEvent.response_code.is_(None), AuditEvent.response_code < 400),
            AuditEvent.stage_at < at,
        )
        .order_by(AuditEvent.stage_at.desc(), AuditEvent.id.desc())
        .limit(1)
    )
    last = (await session.scalars(stmt)).first()
    if last is None:
        return
    change.state_at_t1, change.before = _state_after(last)


def _state_after(event: AuditEvent) -> tuple[State, Any]:
    if event.verb == "delete":
        return "absent", None
    if is_version(event):
        return "known", event.response_object
    return "unknown", None


# What the report reads of each event in the window (no bodies: they are fetched for the last
# write of each object only, which keeps the stream light).
_COLUMNS = (
    AuditEvent.id,
    AuditEvent.audit_id,
    AuditEvent.stage,
    AuditEvent.stage_at,
    AuditEvent.verb,
    AuditEvent.api_group,
    AuditEvent.resource,
    AuditEvent.namespace,
    AuditEvent.name,
    AuditEvent.username,
    AuditEvent.response_code,
)


@dataclass(frozen=True, slots=True)
class _Event:
    id: int
    audit_id: str
    stage: str
    stage_at: datetime
    verb: str
    api_group: str | None
    resource: str
    namespace: str | None
    name: str
    username: str | None
    response_code: int | None


def _requests(events: Sequence[_Event]) -> list[_Event]:
    """One event per request (its most complete stage), in time order."""
    best: dict[str, _Event] = {}
    for event in events:
        seen = best.get(event.audit_id)
        if seen is None or STAGE_RANK.get(event.stage, 0) > STAGE_RANK.get(seen.stage, 0):
            best[event.audit_id] = event
    return sorted(best.values(), key=lambda e: (e.stage_at, e.id))


async def _finish(
    session: AsyncSession,
    key: tuple[str, str, str | None, str],
    events: list[_Event],
    query: ReportQuery,
) -> ObjectChange | None:
    group, resource, namespace, name = key
    change = ObjectChange(query.cluster, group, resource, namespace, name)
    requests = _requests(events)
    users: dict[str, None] = {}
    last_write: _Event | None = None
    for event in requests:
        code = event.response_code
        if event.stage not in ("ResponseComplete", "Panic"):
            # Result never recorded: it may or may not have changed the object.
            change.changes += 1
            last_write = event
        elif code is not None and code >= 400:
            change.failed_attempts += 1
            continue
        else:
            change.changes += 1
            change.recorded_changes += 1
            last_write = event
        users[event.username or "unknown"] = None
        change.event_ids.append(event.id)
        change.first_change_at = change.first_change_at or event.stage_at
        change.last_change_at = event.stage_at
    if change.changes == 0:
        # Only failed attempts: nothing was created, modified or deleted.
        return None
    change.users = sorted(users)
    first = next(e for e in requests if e.id == change.event_ids[0])
    if first.verb == "create" and first.stage in ("ResponseComplete", "Panic"):
        change.state_at_t1 = "absent"
    else:
        await _state_before(session, change, query.since)
    if last_write is not None and last_write.stage in ("ResponseComplete", "Panic"):
        stored = await session.get(AuditEvent, (last_write.id, last_write.stage_at))
        if stored is not None:
            change.state_at_t2, change.after = _state_after(stored)
            session.expunge(stored)
    if change.state_at_t1 != "unknown" and change.state_at_t2 != "unknown":
        change.diff = side_by_side(change.before, change.after, hide_noise=True, context=3)
    return change


def _namespace_of_object() -> ColumnElement[str | None]:
    # A request on a Namespace carries its name as objectRef.namespace, except its create:
    # a Namespace is cluster-scoped, so its events group without a namespace.
    return case((AuditEvent.resource == "namespaces", None), else_=AuditEvent.namespace)


async def change_report(
    session: AsyncSession, query: ReportQuery, *, batch_size: int = 2000
) -> AsyncIterator[ObjectChange]:
    """Objects with writes in [since, until), in (resource, namespace, name, group) order."""
    stmt = (
        select(*_COLUMNS)
        .where(
            *_selection(query),
            AuditEvent.stage_at >= query.since,
            AuditEvent.stage_at < query.until,
        )
        .order_by(
            AuditEvent.resource,
            _namespace_of_object(),
            AuditEvent.name,
            AuditEvent.stage_at,
            AuditEvent.id,
        )
        .execution_options(yield_per=batch_size)
    )
    current: tuple[str, str | None, str] | None = None
    pending: dict[str, list[_Event]] = {}
    result = await session.stream(stmt)
    async for row in result:
        event = _Event(**row._mapping)
        resource, name = event.resource or "", event.name or ""  # never None: selected so
        namespace = None if resource == "namespaces" else event.namespace or None
        place = (resource, namespace, name)
        if place != current:
            for done in await _flush(session, current, pending, query):
                yield done
            current, pending = place, {}
        pending.setdefault(canonical_group(resource, event.api_group), []).append(event)
    for done in await _flush(session, current, pending, query):
        yield done


async def _flush(
    session: AsyncSession,
    place: tuple[str, str | None, str] | None,
    pending: dict[str, list[_Event]],
    query: ReportQuery,
) -> list[ObjectChange]:
    if place is None:
        return []
    out = []
    for group in sorted(pending):
        resource, namespace, name = place
        change = await _finish(session, (group, resource, namespace, name), pending[group], query)
        if change is not None:
            out.append(change)
    return out


# --- formats -----------------------------------------------------------------------------


def object_csv_line(change: ObjectChange) -> str:
    """One object as a CSV line (RFC 4180, lists joined with ';', formulas neutralised)."""
    record = change.record()
    return csv_line([csv_cell(record[c]) for c in REPORT_COLUMNS])


def csv_header() -> str:
    """The report CSV's first line: UTF-8 byte-order mark and REPORT_COLUMNS."""
    return UTF8_BOM + csv_line(REPORT_COLUMNS)


def ndjson_record(change: ObjectChange) -> dict[str, Any]:
    """The report's columns plus the net diff as lines (None when a state is unknown)."""
    record = change.record()
    diff = change.diff
    record["net_diff"] = (
        [
            {
                "kind": str(row.kind),
                "before": row.left.text if row.left else None,
                "after": row.right.text if row.right else None,
                "hidden": row.hidden_count,
            }
            for row in diff.rows
        ]
        if diff is not None
        else None
    )
    record["event_ids"] = change.event_ids
    return record


def resource_filters(query: ReportQuery) -> list[str]:
    """The resource group as timeline filter values (resource.group), for the events file."""
    if query.resource_group is None:
        return []
    return [
        f"{resource}.{group}" if group else resource
        for resource, groups in RESOURCE_GROUPS[query.resource_group]
        for group in groups
    ]


async def write_bundle(
    session: AsyncSession,
    query: ReportQuery,
    writer: BundleWriter,
    *,
    key: Ed25519PrivateKey,
    version: str,
    base_url: str,
) -> dict[str, Any]:
    """Objects (CSV, NDJSON) and the window's write events (the export's CSV columns) into a
    signed bundle; each file is streamed (two passes over the objects, memory stays flat)."""
    objects = 0
    with writer.file("objects.csv") as out:
        out.write(csv_header(), is_row=False)
        async for change in change_report(session, query):
            out.write(object_csv_line(change))
            objects += 1
    with writer.file("objects.ndjson") as out:
        async for change in change_report(session, query):
            out.write(json.dumps(ndjson_record(change), ensure_ascii=False) + "\n")
    events = TimelineFilter(
        cluster=[query.cluster],
        since=query.since,
        until=query.until,
        namespace=[query.namespace] if query.namespace else [],
        resource=resource_filters(query),
        verb=list(WRITE_VERBS),
    )
    with writer.file("events.csv") as out:
        out.write(export_csv_header(), is_row=False)
        async for row in stream_export_rows(session, events):
            out.write(export_csv_row(row, base_url=base_url))
    return writer.finish(key, query=query.as_dict(), row_count=objects, version=version)
