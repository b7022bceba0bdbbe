"""View models for the dashboard templates: listed rows, diff tabs and object-history entries.

Builds plain dataclasses from stored events (no SQL here, no HTML). The diff builders are
synchronous CPU work: routers call them through run_in_threadpool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.audit.diff import (
    BodyKind,
    SideBySideDiff,
    classify_body,
    render_json_patch,
    render_version,
    side_by_side,
)
from app.audit.models import AuditEvent
from app.audit.normalize import reconstruct_event
from app.audit.queries import ObjectKey, is_version, object_key
from app.audit.schemas import CHANGE_VERBS, AuditEventOut, event_out
from app.web.templating import path_segment

# Bodies larger than this (as compact JSON) are not diffed: the raw tab still shows them.
MAX_DIFF_BODY_CHARS: Final = 512 * 1024
# Equal lines kept around each change before the rest of a stretch is folded.
DIFF_CONTEXT: Final = 3
UNFOLDED_CONTEXT: Final = 1_000_000
_BODYLESS_LEVELS: Final = (None, "None", "Metadata")
_BODYLESS_VERBS: Final = ("get", "list", "watch", "delete", "deletecollection")


@dataclass(frozen=True)
class EventRow:
    """One event as listed: the API shape plus what the row links to."""

    event: AuditEventOut
    name: str | None
    object_url: str | None
    is_failure: bool
    # Every stored stage of the event's request, least to most complete: (stage, event id).
    stages: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Pane:
    """One side of a diff: its heading, a plain-words note (why it is missing...) and a link."""

    title: str
    note: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class DiffView:
    """What a diff tab shows: two panes and the rows, or patch operations, or a size notice."""

    tab: str
    left: Pane
    right: Pane
    diff: SideBySideDiff | None
    patch_lines: tuple[str, ...] = ()
    is_too_large: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    """One event in an object's history with its change to the version before."""

    row: EventRow
    diff: SideBySideDiff | None
    note: str | None
    version_lines: tuple[str, ...]


def object_url(key: ObjectKey) -> str:
    """/objects/{cluster}[/namespaces/{ns}]/{resource}/{name}, every segment encoded."""
    parts = ["objects", key.cluster]
    if key.namespace:
        parts += ["namespaces", key.namespace]
    # The group rides on the resource segment as kubectl writes it (leases.coordination.k8s.io).
    resource = f"{key.resource}.{key.group}" if key.group else key.resource
    parts += [resource, key.name]
    return "/" + "/".join(path_segment(part) for part in parts)


def event_row(row: AuditEvent, *, stages: Sequence[tuple[str, int]] = ()) -> EventRow:
    """The listing view of a stored event (with its request's stages when known)."""
    key = object_key(row)
    return EventRow(
        event=event_out(row),
        name=key.name if key is not None else row.name,
        object_url=object_url(key) if key is not None else None,
        is_failure=row.response_code is not None and row.response_code >= 400,
        stages=tuple(stages),
    )


def raw_json(row: AuditEvent) -> str:
    """The event as received (secret values redacted), pretty-printed."""
    event = reconstruct_event(row.raw, row.request_object, row.response_object)
    return json.dumps(event, indent=2, ensure_ascii=False, sort_keys=False)


def _is_too_large(*bodies: Any) -> bool:
    return any(
        body is not None and len(json.dumps(body, separators=(",", ":"))) > MAX_DIFF_BODY_CHARS
        for body in bodies
    )


def _context(show_all: bool) -> int:
    return UNFOLDED_CONTEXT if show_all else DIFF_CONTEXT


def _diff(left: Any, right: Any, *, hide_noise: bool, show_all: bool) -> SideBySideDiff:
    diff = side_by_side(left, right, hide_noise=hide_noise, context=_context(show_all))
    if diff.is_identical and not show_all:
        # Nothing changed: folding would hide the whole body, so show it.
        return side_by_side(left, right, hide_noise=hide_noise, context=UNFOLDED_CONTEXT)
    return diff


def _request_note(row: AuditEvent) -> str | None:
    kind = classify_body(row.request_object)
    if kind is BodyKind.MISSING:
        if row.level in _BODYLESS_LEVELS:
            return (
                f"Not recorded: this event was logged at {row.level or 'unknown'} level; "
                "bodies are recorded at RequestResponse level."
            )
        if row.verb in _BODYLESS_VERBS:
            return f"No request body: a {row.verb} request sends none."
        return "No request body was recorded (the API server drops bodies of oversized events)."
    if kind is BodyKind.JSON_PATCH:
        return "The request is a JSON patch: its operations are listed as sent."
    if row.verb == "patch":
        return "The request is a patch document (merge or strategic merge), not the whole object."
    return None


def _response_note(row: AuditEvent) -> str | None:
    kind = classify_body(row.response_object)
    code = row.response_code
    if kind is BodyKind.MISSING:
        if row.level in _BODYLESS_LEVELS:
            return (
                f"Not recorded: this event was logged at {row.level or 'unknown'} level; "
                "bodies are recorded at RequestResponse level."
            )
        if row.level == "Request":
            return "Not recorded: responses are recorded at RequestResponse level only."
        return "No response body was recorded."
    if kind is BodyKind.STATUS:
        if code is not None and code >= 400:
            return f"The request failed ({code}): the response is the error Status."
        if row.verb in ("delete", "deletecollection"):
            return "The object was deleted: the response is a Status, not the object."
        return "The response is a Status, not the object."
    if kind is BodyKind.LIST:
        return "The response is a list of objects."
    return None


def request_response_view(row: AuditEvent, *, hide_noise: bool, show_all: bool) -> DiffView:
    """Request body (left) against response body (right)."""
    left = Pane("Request body", _request_note(row))
    right = Pane("Response body", _response_note(row))
    if _is_too_large(row.request_object, row.response_object):
        return DiffView("request", left, right, None, is_too_large=True)
    if classify_body(row.request_object) is BodyKind.JSON_PATCH:
        ops = row.request_object if isinstance(row.request_object, list) else []
        diff = side_by_side(
            None, row.response_object, hide_noise=hide_noise, context=_context(True)
        )
        return DiffView("request", left, right, diff, patch_lines=tuple(render_json_patch(ops)))
    diff = _diff(row.request_object, row.response_object, hide_noise=hide_noise, show_all=show_all)
    return DiffView("request", left, right, diff)


def _this_version_note(row: AuditEvent) -> str | None:
    if is_version(row):
        return None
    code = row.response_code
    if code is not None and code >= 400:
        return f"This request failed ({code}): the object did not change."
    if row.verb in ("delete", "deletecollection"):
        return "Deleted by this event."
    if row.response_object is None:
        return "This event's response was not recorded, so the resulting version is unknown."
    return "This event's response is not a version of the object."


def previous_version_view(
    row: AuditEvent,
    previous: AuditEvent | None,
    *,
    hide_noise: bool,
    show_all: bool,
) -> DiffView:
    """The object's last stored version before this event (left) against this one (right)."""
    if previous is None:
        note = (
            "None: this event created the object."
            if row.verb == "create"
            else "No earlier version of this object is stored."
        )
        left = Pane("Previous version", note)
    else:
        who = previous.username or "unknown user"
        left = Pane(
            f"Previous version ({previous.verb} by {who})",
            None,
            f"/changes/{previous.id}",
        )
    right = Pane("This version", _this_version_note(row))
    before = previous.response_object if previous is not None else None
    after = row.response_object if is_version(row) else None
    if _is_too_large(before, after):
        return DiffView("previous", left, right, None, is_too_large=True)
    diff = _diff(before, after, hide_noise=hide_noise, show_all=show_all)
    return DiffView("previous", left, right, diff)


def history_entries(
    rows: Sequence[AuditEvent], before_page: AuditEvent | None
) -> list[HistoryEntry]:
    """Entries for rows (newest first), each diffed against the version before it."""
    entries: list[HistoryEntry] = []
    version = before_page.response_object if before_page is not None else None
    for row in reversed(rows):
        before = version
        if is_version(row):
            version = row.response_object
        elif row.verb in ("delete", "deletecollection") and (row.response_code or 0) < 400:
            version = None
        diff: SideBySideDiff | None = None
        note: str | None = None
        if row.response_code is not None and row.response_code >= 400:
            note = f"Failed ({row.response_code}): no change."
        elif _is_too_large(before, version):
            note = "Too large to diff here: open the event."
        elif row.verb in CHANGE_VERBS or before != version:
            diff = side_by_side(before, version, hide_noise=True, context=DIFF_CONTEXT)
            if diff.is_identical:
                note, diff = "No change to the stored version.", None
        else:
            note = "Read: no change."
        lines = render_version(version)
        entries.append(HistoryEntry(event_row(row), diff, note, lines))
    entries.reverse()
    return entries
