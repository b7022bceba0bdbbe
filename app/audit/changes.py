"""What one event did to its object: changed, unchanged, created, deleted, failed, or not known.

Pure: takes a stored event and the object's previous known version, returns the outcome with a
field-level summary. Unknown results are named as such, never reported as "no change"; redacted
values are compared by their keyed-hash markers, so a rotated secret reads as changed.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from app.audit.diff import JsonValue, strip_noise
from app.audit.models import AuditEvent
from app.audit.patches import PatchKind, apply_patch, classify_patch
from app.audit.queries import is_version
from app.audit.redact import MARKER_RE, is_marker
from app.audit.schemas import CHANGE_VERBS, ChangeOut, FieldChangeOut

BODYLESS_LEVELS: Final = (None, "None", "Metadata")
_DELETE_VERBS: Final = ("delete", "deletecollection")
_MAX_VALUE_CHARS: Final = 60
SUMMARY_FIELDS: Final = 5
ABSENT_TEXT: Final = "(absent)"
REDACTED_CHANGED_TEXT: Final = "changed (redacted)"
COMPUTABLE_PATCHES: Final = (PatchKind.JSON_PATCH, PatchKind.MERGE)
_PATCH_NAMES: Final = {
    PatchKind.JSON_PATCH: "a JSON patch",
    PatchKind.MERGE: "a merge patch without lists",
}


class Outcome(enum.StrEnum):
    """What is known about an event's effect on its object."""

    CREATED = "created"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    FAILED = "failed"
    READ = "read"
    # The event changed (or may have changed) the object, but the result was not recorded.
    NOT_RECORDED = "not_recorded"
    # The result is known but the version before it is not stored, so the change is unknown.
    NO_PREVIOUS = "no_previous"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def is_known(self) -> bool:
        """True when the diff between before and after is the event's real effect."""
        return self in (Outcome.CREATED, Outcome.CHANGED, Outcome.UNCHANGED, Outcome.DELETED)


_LABELS: Final = {
    Outcome.CREATED: "created",
    Outcome.CHANGED: "changed",
    Outcome.UNCHANGED: "no change",
    Outcome.DELETED: "deleted",
    Outcome.FAILED: "failed, no change",
    Outcome.READ: "read, no change",
    Outcome.NOT_RECORDED: "result not recorded",
    Outcome.NO_PREVIOUS: "previous version not stored",
}


class FieldChangeKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed field: a display path, the values as short text (never a secret's hash)."""

    path: str
    kind: FieldChangeKind
    before: str | None
    after: str | None
    is_redacted: bool

    @property
    def text(self) -> str:
        if self.is_redacted and self.kind is FieldChangeKind.CHANGED:
            return f"{self.path}: {REDACTED_CHANGED_TEXT}"
        return f"{self.path}: {self.before or ABSENT_TEXT} → {self.after or ABSENT_TEXT}"


@dataclass(frozen=True)
class EventChange:
    """An event's effect: outcome, the bodies to compare, field changes and a plain-words note.

    `after` is computed (not recorded) when is_computed; then `patch_kind` says from what.
    """

    outcome: Outcome
    before: Any
    after: Any
    fields: tuple[FieldChange, ...]
    note: str
    is_computed: bool = False
    patch_kind: PatchKind | None = None
    # Set when changes with unrecorded results lie between the previous version and this one.
    gap_note: str | None = None

    @property
    def summary(self) -> str:
        """One line: the first changed fields, or the outcome in words."""
        if self.outcome is Outcome.CHANGED and self.fields:
            return summary_line(self.fields)
        return self.note


def change_out(change: EventChange, *, previous_event_id: int | None, unrecorded: int) -> ChangeOut:
    """The API shape of a change."""
    return ChangeOut(
        outcome=change.outcome.value,
        label=change.outcome.label,
        summary=change.summary,
        note=change.note,
        gap_note=change.gap_note,
        is_computed=change.is_computed,
        patch_kind=change.patch_kind.value if change.patch_kind is not None else None,
        previous_event_id=previous_event_id,
        unrecorded_changes_before=unrecorded,
        fields=[
            FieldChangeOut(
                path=f.path,
                change=f.kind.value,
                before=f.before,
                after=f.after,
                is_redacted=f.is_redacted,
            )
            for f in change.fields
        ],
    )


def summary_line(fields: tuple[FieldChange, ...], limit: int = SUMMARY_FIELDS) -> str:
    """`data.LOG_LEVEL: info → debug; spec.replicas: 2 → 3` (and how many more)."""
    shown = "; ".join(field.text for field in fields[:limit])
    more = len(fields) - limit
    return f"{shown}; and {more} more" if more > 0 else shown


def field_changes(before: object, after: object) -> tuple[FieldChange, ...]:
    """Changed leaf fields between two versions, noise fields left out, markers by hash."""
    left, _ = strip_noise(before)
    right, _ = strip_noise(after)
    found: list[FieldChange] = []
    _walk(left, right, "", found)
    return tuple(found)


def gap_note(unrecorded: int) -> str | None:
    """Words for changes with unrecorded results between the previous version and an event."""
    if unrecorded <= 0:
        return None
    return (
        f"{_changes_without_result(unrecorded)} between the previous stored version and this "
        "one: the difference may include theirs."
    )


def _changes_without_result(count: int) -> str:
    if count == 1:
        return "1 change has no recorded result"
    return f"{count} changes have no recorded result"


def describe_change(
    event: AuditEvent, previous: object | None, *, unrecorded: int = 0
) -> EventChange:
    """The effect of event on its object, given the last known version before it (None: none)
    and how many changes with unrecorded results happened since that version."""
    change = _describe(event, previous, unrecorded)
    if unrecorded and change.outcome is Outcome.UNCHANGED:
        # Equal to the last recorded version, but a change in between may have been undone by
        # this one: what this request did is not known.
        return dataclasses.replace(
            change,
            outcome=Outcome.NO_PREVIOUS,
            fields=(),
            note="Same as the last recorded version, but the version just before this request"
            " is not recorded: whether it changed anything is unknown.",
            gap_note=gap_note(unrecorded),
        )
    if unrecorded and change.outcome is Outcome.CHANGED:
        return dataclasses.replace(change, gap_note=gap_note(unrecorded))
    return change


def _describe(event: AuditEvent, previous: object | None, unrecorded: int) -> EventChange:
    code = event.response_code
    if code is not None and code >= 500 and event.verb in CHANGE_VERBS:
        # A server error (a timeout, say) does not tell whether the write was applied.
        return _not_recorded(
            previous,
            f"The request ended with a server error ({code}): whether the object changed is"
            " not known.",
        )
    if code is not None and code >= 400:
        return _unchanged(
            Outcome.FAILED, f"The request failed ({code}): the object did not change."
        )
    if event.verb not in CHANGE_VERBS:
        return _unchanged(Outcome.READ, f"A {event.verb} request: it does not change the object.")
    if event.stage == "RequestReceived" or code is None:
        return _not_recorded(
            previous,
            f"This is the {event.stage} stage, written before the request completed: it "
            "holds no result.",
        )
    if event.verb in _DELETE_VERBS:
        return EventChange(Outcome.DELETED, previous, None, (), "Deleted by this event.")
    if is_version(event):
        after = event.response_object
        if event.verb == "create":
            return EventChange(Outcome.CREATED, None, after, (), "Created by this event.")
        if previous is None:
            return EventChange(
                Outcome.NO_PREVIOUS,
                None,
                after,
                (),
                "No earlier version of this object is stored: the resulting version is shown, "
                "but what this event changed in it is not known.",
            )
        return _compared(previous, after, is_computed=False, patch_kind=None, prefix="")
    if event.level in BODYLESS_LEVELS:
        return _not_recorded(
            previous,
            f"This event was logged at {event.level or 'unknown'} level; "
            "bodies are recorded at RequestResponse level only.",
        )
    if event.subresource is not None and event.subresource != "status":
        return _not_recorded(
            previous,
            f"The response of the {event.subresource} subresource is not a version of the object.",
        )
    if event.level == "Request" and event.verb != "patch":
        return _not_recorded(
            previous,
            "This event was logged at Request level: responses are recorded at "
            "RequestResponse level only.",
        )
    missing = (
        "The response body is missing"
        if event.response_object is None
        else "The response body is not a version of the object"
    )
    if event.verb == "patch" and event.request_object is not None:
        if unrecorded and classify_patch(event.request_object) in COMPUTABLE_PATCHES:
            return _not_recorded(
                previous,
                f"{missing}, and {_changes_without_result(unrecorded)} since the previous "
                "stored version, so the version this patch applied to is not known.",
            )
        return _patched(event.request_object, previous, missing)
    if event.response_object is not None:
        return _not_recorded(previous, f"{missing}.")
    return _not_recorded(
        previous,
        f"{missing} (the API server drops bodies of oversized events).",
    )


def _patched(patch: object, previous: object | None, missing: str) -> EventChange:
    kind = classify_patch(patch)
    outcome = apply_patch(previous, patch)
    if outcome.result is None:
        return EventChange(
            Outcome.NOT_RECORDED,
            previous,
            None,
            (),
            f"{missing}. The patch is {outcome.reason}.",
            patch_kind=kind,
        )
    return _compared(
        previous,
        outcome.result,
        is_computed=True,
        patch_kind=kind,
        prefix=(
            f"Computed, not recorded: {missing[0].lower()}{missing[1:]}, so this is the patch "
            f"({_PATCH_NAMES[kind]}) applied to the previous stored version; admission "
            "webhooks and defaulting may have changed more. "
        ),
    )


def _compared(
    before: object, after: object, *, is_computed: bool, patch_kind: PatchKind | None, prefix: str
) -> EventChange:
    fields = field_changes(before, after)
    if fields:
        count = len(fields)
        note = f"{prefix}{count} field{'s' if count != 1 else ''} changed."
        outcome = Outcome.CHANGED
    else:
        note = f"{prefix}No change to the stored version (noise fields aside)."
        outcome = Outcome.UNCHANGED
    return EventChange(outcome, before, after, fields, note, is_computed, patch_kind)


def _unchanged(outcome: Outcome, note: str) -> EventChange:
    return EventChange(outcome, None, None, (), note)


def _not_recorded(previous: object | None, note: str) -> EventChange:
    return EventChange(Outcome.NOT_RECORDED, previous, None, (), note)


def _walk(left: JsonValue, right: JsonValue, path: str, found: list[FieldChange]) -> None:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(left.keys() | right.keys()):
            child = _child_path(path, key)
            if key not in right:
                found.append(_one_sided(child, left[key], is_before=True))
            elif key not in left:
                found.append(_one_sided(child, right[key], is_before=False))
            else:
                _walk(left[key], right[key], child, found)
        return
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (left_item, right_item) in enumerate(zip(left, right, strict=True)):
            _walk(left_item, right_item, f"{path}[{index}]", found)
        return
    if left == right:
        return
    is_redacted = _has_marker(left) or _has_marker(right)
    found.append(
        FieldChange(
            path or "(object)",
            FieldChangeKind.CHANGED,
            _show(left),
            _show(right),
            is_redacted,
        )
    )


def _one_sided(path: str, value: JsonValue, *, is_before: bool) -> FieldChange:
    shown = _show(value)
    if is_before:
        return FieldChange(path, FieldChangeKind.REMOVED, shown, None, _has_marker(value))
    return FieldChange(path, FieldChangeKind.ADDED, None, shown, _has_marker(value))


def _child_path(path: str, key: str) -> str:
    if len(key) > _MAX_VALUE_CHARS:
        key = key[: _MAX_VALUE_CHARS - 1] + "…"
    if key and all(char.isalnum() or char in "_-" for char in key):
        return f"{path}.{key}" if path else key
    return f"{path}[{_printable(json.dumps(key, ensure_ascii=False))}]"


def _has_marker(value: JsonValue) -> bool:
    if isinstance(value, str):
        return MARKER_RE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_marker(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_marker(item) for item in value)
    return False


def _show(value: JsonValue) -> str:
    """A value as short one-line text; secrets as "redacted", never their markers."""
    if is_marker(value):
        return "redacted"
    if isinstance(value, str):
        text = MARKER_RE.sub("[redacted]", value)
        is_plain = (
            bool(text)
            and text.isprintable()
            and text.strip() == text
            and not _reads_as_other_scalar(text)
        )
        text = text if is_plain else json.dumps(text, ensure_ascii=False)
    elif isinstance(value, list) and value and len(json.dumps(value)) > _MAX_VALUE_CHARS:
        text = f"[{len(value)} item{'s' if len(value) != 1 else ''}]"
    else:
        text = MARKER_RE.sub("redacted", json.dumps(value, ensure_ascii=False, sort_keys=True))
    text = _printable(text)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _printable(text: str) -> str:
    """Escape what would break or hide in one line of text (controls, line separators)."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


def _reads_as_other_scalar(text: str) -> bool:
    """True for strings such as "3", "true", "null" or "[1]" that unquoted would read as
    non-strings."""
    if text[0] in "[{":
        return True  # would read as a list or an object
    if len(text) > _MAX_VALUE_CHARS:
        return False  # numbers, booleans and null that matter here are short
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return not isinstance(value, str)
