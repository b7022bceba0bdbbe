"""View models for the dashboard templates: listed rows, diff tabs and object-history entries.

Builds plain dataclasses from stored events (no SQL here, no HTML). The diff builders are
synchronous CPU work: routers call them through run_in_threadpool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from app.audit.changes import EventChange, Outcome, describe_change
from app.audit.diff import (
    BodyKind,
    SideBySideDiff,
    classify_body,
    mask_redactions,
    render_json_patch,
    render_version,
    render_yaml_lines,
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
    """What a diff tab shows: two panes and the rows, or a patch as sent, or a size notice.

    patch_lines is the request's patch (JSON patch operations, or a patch object as YAML);
    change is set on the previous-version tab: what this event did to the object.
    """

    tab: str
    left: Pane
    right: Pane
    diff: SideBySideDiff | None
    patch_lines: tuple[str, ...] = ()
    is_patch_ops: bool = False
    is_too_large: bool = False
    change: EventChange | None = None

    @property
    def shows_counts(self) -> bool:
        """Line counts are the change only when both sides are what they claim to be."""
        if self.diff is None:
            return False
        if self.change is not None:
            return self.change.outcome.is_known
        return not self.patch_lines


@dataclass(frozen=True)
class HistoryEntry:
    """One event in an object's history: its outcome, summary and diff to the version before."""

    row: EventRow
    change: EventChange
    diff: SideBySideDiff | None
    version_lines: tuple[str, ...]
    is_too_large: bool = False
    is_reads: bool = False
    # The request's patch as sent, when its result was not recorded (or only computed).
    patch_lines: tuple[str, ...] = ()
    is_patch_ops: bool = False


@dataclass(frozen=True)
class ReadsFold:
    """Consecutive reads between two changes, folded into one line."""

    count: int
    users: tuple[str, ...]
    first_id: int
    failed: int = 0
    is_reads: bool = True

    @property
    def text(self) -> str:
        noun = "read" if self.count == 1 else "reads"
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{self.count} {noun} by {', '.join(self.users)}{failed}"


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


# Shown in the Result facts already (decision and reason): listed once.
_AUTHZ_ANNOTATIONS: Final = ("authorization.k8s.io/decision", "authorization.k8s.io/reason")


def shown_annotations(row: AuditEvent) -> dict[str, Any]:
    """The event's annotations that the facts panel does not already show."""
    annotations = row.raw.get("annotations") if isinstance(row.raw, dict) else None
    if not isinstance(annotations, dict):
        return {}
    return {k: v for k, v in annotations.items() if k not in _AUTHZ_ANNOTATIONS}


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


def patch_lines(body: Any) -> tuple[tuple[str, ...], bool]:
    """A patch as sent, readable: JSON patch operations one per line (True), else YAML lines."""
    if classify_body(body) is BodyKind.JSON_PATCH:
        return tuple(render_json_patch(body)), True
    masked, _ = mask_redactions(body, None)
    return tuple(render_yaml_lines(masked)), False


def _is_patch(row: AuditEvent) -> bool:
    return row.verb == "patch" and isinstance(row.request_object, dict | list)


def request_response_view(row: AuditEvent, *, hide_noise: bool, show_all: bool) -> DiffView:
    """Request body (left) against response body (right); a patch is shown as sent, not diffed."""
    left = Pane("Request body", _request_note(row))
    right = Pane("Response body", _response_note(row))
    if _is_too_large(row.request_object, row.response_object):
        return DiffView("request", left, right, None, is_too_large=True)
    if _is_patch(row) or classify_body(row.request_object) is BodyKind.JSON_PATCH:
        # A patch against the whole object would read as "+39 lines": show both as they are.
        lines, is_ops = patch_lines(row.request_object)
        diff = side_by_side(
            None, row.response_object, hide_noise=hide_noise, context=_context(True)
        )
        return DiffView("request", left, right, diff, patch_lines=lines, is_patch_ops=is_ops)
    diff = _diff(row.request_object, row.response_object, hide_noise=hide_noise, show_all=show_all)
    return DiffView("request", left, right, diff)


def _this_version_pane(change: EventChange) -> Pane:
    if change.is_computed:
        return Pane("This version (computed from the patch)", "Computed, not recorded.")
    if change.outcome is Outcome.FAILED:
        return Pane("This version", "The request failed: the object did not change.")
    if change.outcome is Outcome.DELETED:
        return Pane("This version", "Deleted by this event.")
    if change.outcome is Outcome.NOT_RECORDED:
        return Pane("This version", "Not recorded: the resulting version is unknown.")
    return Pane("This version")


def previous_version_view(
    row: AuditEvent,
    previous: AuditEvent | None,
    change: EventChange,
    *,
    hide_noise: bool,
    show_all: bool,
) -> DiffView:
    """The object's last stored version before this event (left) against this one (right);
    change is describe_change's reading of the event against that version."""
    if row.verb == "create" or previous is None:
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
    right = _this_version_pane(change)
    lines, is_ops = patch_lines(row.request_object) if _is_patch(row) else ((), False)
    before, after = change.before, change.after
    if change.outcome in (Outcome.FAILED, Outcome.NOT_RECORDED, Outcome.READ):
        # Nothing changed, or what did is unknown: the previous version, and what a read
        # returned (another version seen), side by side; no counts (shows_counts).
        before = previous.response_object if previous is not None else None
        after = row.response_object if is_version(row) else None
    if row.verb == "create":
        before = None
    if _is_too_large(before, after):
        return DiffView("previous", left, right, None, is_too_large=True, change=change)
    diff = _diff(before, after, hide_noise=hide_noise, show_all=show_all)
    return DiffView(
        "previous", left, right, diff, patch_lines=lines, is_patch_ops=is_ops, change=change
    )


def history_entries(
    rows: Sequence[AuditEvent],
    before_page: AuditEvent | None,
    *,
    show_reads: bool = False,
    unrecorded: int = 0,
) -> list[HistoryEntry | ReadsFold]:
    """Entries for rows (newest first, one per request), each against the version before it;
    reads folded into one line per run unless show_reads. unrecorded: changes without a
    recorded result between before_page and the oldest row."""
    entries: list[HistoryEntry | ReadsFold] = []
    version = before_page.response_object if before_page is not None else None
    reads: list[AuditEvent] = []
    # One entry per request: its most complete stored stage (flagged at ingest).
    for row in reversed([row for row in rows if row.is_request_row]):
        change = describe_change(row, version, unrecorded=unrecorded)
        # A read that returned the object is an observed version too.
        if is_version(row) or change.outcome is Outcome.DELETED:
            version = row.response_object if is_version(row) else None
            unrecorded = 0
        elif change.outcome is Outcome.NOT_RECORDED or change.is_computed:
            unrecorded += 1
        if row.verb not in CHANGE_VERBS and not show_reads:
            reads.append(row)
            continue
        if reads:
            entries.append(_fold(reads))
            reads = []
        entries.append(_history_entry(row, change))
    if reads:
        entries.append(_fold(reads))
    entries.reverse()
    return entries


def _history_entry(row: AuditEvent, change: EventChange) -> HistoryEntry:
    diff: SideBySideDiff | None = None
    is_too_large = _is_too_large(change.before, change.after)
    has_bodies = change.before is not None or change.after is not None
    if (
        change.outcome in (Outcome.CHANGED, Outcome.CREATED, Outcome.DELETED)
        and has_bodies
        and not is_too_large
    ):
        diff = side_by_side(change.before, change.after, hide_noise=True, context=DIFF_CONTEXT)
    lines = render_version(change.after) if not is_too_large else ()
    patch: tuple[str, ...] = ()
    is_ops = False
    if _is_patch(row) and (change.is_computed or change.outcome is Outcome.NOT_RECORDED):
        patch, is_ops = patch_lines(row.request_object)
    return HistoryEntry(
        event_row(row),
        change,
        diff,
        lines,
        is_too_large,
        patch_lines=patch,
        is_patch_ops=is_ops,
    )


def _fold(reads: Sequence[AuditEvent]) -> ReadsFold:
    users = dict.fromkeys(row.username or "unknown user" for row in reversed(reads))
    failed = sum(1 for row in reads if row.response_code is not None and row.response_code >= 400)
    return ReadsFold(len(reads), tuple(users), reads[-1].id, failed)
