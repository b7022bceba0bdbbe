"""Side-by-side diff rows of two Kubernetes bodies as canonical YAML; folds noise, masks redactions.

Pure: no I/O, no database, no web imports. It builds rows for a template; it never produces HTML.
"""

from __future__ import annotations

import difflib
import enum
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import yaml

from app.audit.redact import LAST_APPLIED, MARKER_RE

JsonValue: TypeAlias = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None

REDACTED_UNCHANGED: Final = "redacted (unchanged)"
REDACTED_CHANGED: Final = "redacted (changed)"
REDACTED: Final = "redacted"

_EMBEDDED_MARKER_TEXT: Final = "[redacted]"
_EMBEDDED_MARKER_CHANGED: Final = "[redacted (changed)]"

_NOISE_METADATA_KEYS: Final = (
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "selfLink",
)

# Kubernetes objects nest ~20 levels; the cap keeps PyYAML's recursive representer far from the
# interpreter's recursion limit even when called from a deep web stack.
_MAX_DEPTH: Final = 100
# Python refuses int -> str beyond 4300 digits (sys.int_info.str_digits_check_threshold).
_MAX_INT_BITS: Final = 14_000
_YAML_WIDTH: Final = 2**31 - 1
# Character-level SequenceMatcher is quadratic; beyond this the differing middle is marked whole.
_MAX_INLINE_CHARS: Final = 2_000
# Equal islands shorter than this between two changes are shown as changed, to avoid confetti.
_MIN_EQUAL_ISLAND: Final = 3
_MAX_PATCH_VALUE_CHARS: Final = 200
_MAX_PATCH_PATH_CHARS: Final = 500


class BodyKind(enum.StrEnum):
    """What a request or response body is, so the UI can choose how to show it."""

    MISSING = "missing"
    JSON_PATCH = "json_patch"
    STATUS = "status"
    LIST = "list"
    OBJECT = "object"
    OTHER = "other"


class RowKind(enum.StrEnum):
    """How one row of the side-by-side diff relates its two cells."""

    EQUAL = "equal"
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"
    FOLD = "fold"


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of one line; is_changed marks in-line differences (only set in changed rows)."""

    text: str
    is_changed: bool


@dataclass(frozen=True, slots=True)
class Cell:
    """One side of a row: the 1-based line number in that side's YAML and the line's segments."""

    number: int
    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)


@dataclass(frozen=True, slots=True)
class Row:
    """A line-aligned row. A None cell is padding; fold rows have no cells but carry hidden_rows."""

    kind: RowKind
    left: Cell | None
    right: Cell | None
    hidden_rows: tuple[Row, ...] = ()

    @property
    def hidden_count(self) -> int:
        return len(self.hidden_rows)


@dataclass(frozen=True, slots=True)
class RenderedSide:
    """One body as rendered: its kind, its YAML lines (empty when missing) and its noise paths."""

    body_kind: BodyKind
    lines: tuple[str, ...]
    noise_paths: tuple[str, ...]

    @property
    def is_missing(self) -> bool:
        return self.body_kind is BodyKind.MISSING


@dataclass(frozen=True, slots=True)
class SideBySideDiff:
    """The whole diff: both sides, the rows (long equal stretches folded) and line counts."""

    left: RenderedSide
    right: RenderedSide
    rows: tuple[Row, ...]
    added: int
    removed: int
    changed: int
    is_noise_hidden: bool
    noise_paths: tuple[str, ...]

    @property
    def noise_count(self) -> int:
        return len(self.noise_paths)

    @property
    def is_identical(self) -> bool:
        return (
            self.added == 0
            and self.removed == 0
            and self.changed == 0
            and self.left.is_missing == self.right.is_missing
        )


class _Absent:
    """Marks a value absent on one side of a parallel walk (distinct from JSON null)."""


_ABSENT: Final = _Absent()


def classify_body(body: object) -> BodyKind:
    """Classify an audit requestObject/responseObject; never raises."""
    if body is None:
        return BodyKind.MISSING
    if isinstance(body, list):
        is_patch = bool(body) and all(
            isinstance(op, dict) and "op" in op and "path" in op for op in body
        )
        return BodyKind.JSON_PATCH if is_patch else BodyKind.OTHER
    if not isinstance(body, dict):
        return BodyKind.OTHER
    kind = body.get("kind")
    if kind == "Status":
        return BodyKind.STATUS
    if isinstance(kind, str) and kind.endswith("List") and isinstance(body.get("items"), list):
        return BodyKind.LIST
    return BodyKind.OBJECT


def render_yaml_lines(value: object) -> list[str]:
    """Render a JSON value as canonical YAML lines (sorted keys, block style, no wrapping)."""
    text = yaml.dump(
        _normalize(value, 0),
        Dumper=_CanonicalDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=_YAML_WIDTH,
        indent=2,
    )
    # Only "\n" separates lines: str.splitlines() would also split on U+2028 and friends.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # PyYAML ends open-ended documents (top-level scalars, "|+" blocks) with a "..." marker;
    # content never renders as a bare "..." line, so this only drops the marker.
    if lines and lines[-1] == "...":
        lines.pop()
    return lines


def strip_noise(body: object) -> tuple[JsonValue, tuple[str, ...]]:
    """Return a copy of body without noise fields, and the display paths of what was removed."""
    normalized = _normalize(body, 0)
    if not isinstance(normalized, dict):
        return normalized, ()
    paths: list[str] = []
    _strip_object_noise(normalized, "", paths)
    items = normalized.get("items")
    if classify_body(normalized) is BodyKind.LIST and isinstance(items, list):
        for index, item in enumerate(items):
            if isinstance(item, dict):
                _strip_object_noise(item, f"items[{index}].", paths)
    return normalized, tuple(paths)


def mask_redactions(left: object, right: object) -> tuple[JsonValue, JsonValue]:
    """Replace redaction markers by comparison words, path by path; no marker text survives."""
    masked_left, masked_right = _mask_pair(_normalize(left, 0), _normalize(right, 0))
    return _present_or_none(masked_left), _present_or_none(masked_right)


def split_changed_line(left: str, right: str) -> tuple[tuple[Segment, ...], tuple[Segment, ...]]:
    """Split two paired lines into segments marking exactly the characters that differ."""
    prefix = _common_prefix_length(left, right)
    suffix = _common_suffix_length(left[prefix:], right[prefix:])
    left_middle = left[prefix : len(left) - suffix]
    right_middle = right[prefix : len(right) - suffix]
    pieces = _diff_middle(left_middle, right_middle)
    left_pieces: list[tuple[str, bool]] = [(left[:prefix], False)]
    right_pieces: list[tuple[str, bool]] = [(right[:prefix], False)]
    for is_changed, left_text, right_text in pieces:
        left_pieces.append((left_text, is_changed))
        right_pieces.append((right_text, is_changed))
    left_pieces.append((left[len(left) - suffix :], False))
    right_pieces.append((right[len(right) - suffix :], False))
    return _merge_segments(left_pieces), _merge_segments(right_pieces)


def render_json_patch(ops: Iterable[object]) -> list[str]:
    """Render JSON patch operations one per line, e.g. "replace /spec/replicas: 3"."""
    lines: list[str] = []
    for op in ops:
        masked, _ = mask_redactions(op, None)
        if not isinstance(masked, dict) or "op" not in masked or "path" not in masked:
            lines.append(_compact_json(masked))
            continue
        name = _one_line(str(masked["op"]), _MAX_PATCH_PATH_CHARS)
        path = _one_line(str(masked["path"]), _MAX_PATCH_PATH_CHARS)
        if "from" in masked:
            source = _one_line(str(masked["from"]), _MAX_PATCH_PATH_CHARS)
            lines.append(f"{name} {source} -> {path}")
        elif "value" in masked:
            lines.append(f"{name} {path}: {_compact_json(masked['value'])}")
        else:
            lines.append(f"{name} {path}")
    return lines


def side_by_side(
    left: object, right: object, *, hide_noise: bool = True, context: int = 3
) -> SideBySideDiff:
    """Diff two bodies (None: side missing) as line-aligned YAML rows; never raises on JSON."""
    if context < 0:
        raise ValueError("context must be >= 0")
    left_kind = classify_body(left)
    right_kind = classify_body(right)
    left_body, left_noise = strip_noise(left)
    right_body, right_noise = strip_noise(right)
    if not hide_noise:
        left_body, right_body = _normalize(left, 0), _normalize(right, 0)
    masked_left, masked_right = _mask_pair(
        _ABSENT if left is None else left_body,
        _ABSENT if right is None else right_body,
    )
    left_lines = () if left is None else tuple(render_yaml_lines(masked_left))
    right_lines = () if right is None else tuple(render_yaml_lines(masked_right))
    rows = _align_rows(left_lines, right_lines)
    return SideBySideDiff(
        left=RenderedSide(body_kind=left_kind, lines=left_lines, noise_paths=left_noise),
        right=RenderedSide(body_kind=right_kind, lines=right_lines, noise_paths=right_noise),
        rows=tuple(_fold_equal_runs(rows, context)),
        added=sum(1 for row in rows if row.kind is RowKind.ADDED),
        removed=sum(1 for row in rows if row.kind is RowKind.REMOVED),
        changed=sum(1 for row in rows if row.kind is RowKind.CHANGED),
        is_noise_hidden=hide_noise,
        noise_paths=tuple(dict.fromkeys(left_noise + right_noise)),
    )


def render_version(body: object) -> tuple[str, ...]:
    """One body as side_by_side renders a side alone: noise hidden, markers as "redacted"."""
    if body is None:
        return ()
    stripped, _ = strip_noise(body)
    _, masked = _mask_pair(_ABSENT, stripped)
    return tuple(render_yaml_lines(masked))


class _CanonicalDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # Anchors and aliases ("&id001") would make two equal bodies render differently.
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style: str | None = None
    if any(char in data for char in "\x85\u2028\u2029"):
        # Unicode line separators would break a line visually; double quotes escape them.
        style = '"'
    elif "\n" in data:
        # PyYAML falls back to double quotes by itself when a literal block cannot hold the text.
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_CanonicalDumper.add_representer(str, _represent_str)


def _normalize(value: object, depth: int) -> JsonValue:
    """Copy value into plain JSON types, capping depth and oversized integers."""
    # Exact built-in types only: PyYAML's SafeDumper rejects subclasses such as StrEnum members.
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            digits = int(value.bit_length() * 0.30103) + 1
            return f"<integer with about {digits} digits, not shown>"
        return int(value)
    if isinstance(value, Mapping | Sequence) and depth >= _MAX_DEPTH:
        return f"<nested deeper than {_MAX_DEPTH} levels, not shown>"
    if isinstance(value, Mapping):
        return {str(key): _normalize(item, depth + 1) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_normalize(item, depth + 1) for item in value]
    return str(value)


def _strip_object_noise(obj: dict[str, JsonValue], prefix: str, paths: list[str]) -> None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return
    for key in _NOISE_METADATA_KEYS:
        if key in metadata:
            del metadata[key]
            paths.append(f"{prefix}metadata.{key}")
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        del annotations[LAST_APPLIED]
        paths.append(f'{prefix}metadata.annotations["{LAST_APPLIED}"]')
        if not annotations:
            # Emptied by us, not by the user: "annotations: {}" would be an artefact.
            del metadata["annotations"]


def _is_marker(value: object) -> bool:
    return isinstance(value, str) and MARKER_RE.fullmatch(value) is not None


def _scrub(value: JsonValue | _Absent) -> JsonValue | _Absent:
    """Mask one side with no counterpart: markers become "redacted", embedded ones too."""
    if _is_marker(value):
        return REDACTED
    if isinstance(value, str):
        return MARKER_RE.sub(_EMBEDDED_MARKER_TEXT, value)
    if isinstance(value, dict):
        return {_scrub_key(key): _present_or_none(_scrub(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_present_or_none(_scrub(item)) for item in value]
    return value


def _mask_embedded_pair(left: str, right: str) -> tuple[str, str]:
    """Two different strings: markers inside them are compared by hash, position by position."""
    left_markers = MARKER_RE.findall(left)
    positions = itertools.count()

    def right_word(match: re.Match[str]) -> str:
        index = next(positions)
        is_same = index < len(left_markers) and left_markers[index] == match.group(0)
        return _EMBEDDED_MARKER_TEXT if is_same else _EMBEDDED_MARKER_CHANGED

    return MARKER_RE.sub(_EMBEDDED_MARKER_TEXT, left), MARKER_RE.sub(right_word, right)


def _scrub_key(key: str) -> str:
    return MARKER_RE.sub(_EMBEDDED_MARKER_TEXT, key)


def _mask_pair(
    left: JsonValue | _Absent, right: JsonValue | _Absent
) -> tuple[JsonValue | _Absent, JsonValue | _Absent]:
    is_left_marker = _is_marker(left)
    is_right_marker = _is_marker(right)
    if is_left_marker and is_right_marker:
        # The keyed hash tells equal values from different ones: the newer side says which.
        if left == right:
            return REDACTED_UNCHANGED, REDACTED_UNCHANGED
        return REDACTED, REDACTED_CHANGED
    if (
        isinstance(left, str)
        and isinstance(right, str)
        and left != right
        and not (is_left_marker or is_right_marker)
    ):
        return _mask_embedded_pair(left, right)
    if isinstance(left, dict) and isinstance(right, dict):
        masked_left: dict[str, JsonValue] = {}
        masked_right: dict[str, JsonValue] = {}
        for key, item in left.items():
            left_item, right_item = _mask_pair(item, right.get(key, _ABSENT))
            masked_left[_scrub_key(key)] = _present_or_none(left_item)
            if key in right:
                masked_right[_scrub_key(key)] = _present_or_none(right_item)
        for key, item in right.items():
            if key not in left:
                masked_right[_scrub_key(key)] = _present_or_none(_scrub(item))
        return masked_left, masked_right
    if isinstance(left, list) and isinstance(right, list):
        pairs = [
            _mask_pair(
                left[index] if index < len(left) else _ABSENT,
                right[index] if index < len(right) else _ABSENT,
            )
            for index in range(max(len(left), len(right)))
        ]
        return (
            [_present_or_none(pair[0]) for pair in pairs[: len(left)]],
            [_present_or_none(pair[1]) for pair in pairs[: len(right)]],
        )
    return _scrub(left), _scrub(right)


def _present_or_none(value: JsonValue | _Absent) -> JsonValue:
    return None if isinstance(value, _Absent) else value


def _common_prefix_length(left: str, right: str) -> int:
    limit = min(len(left), len(right))
    index = 0
    while index < limit and left[index] == right[index]:
        index += 1
    return index


def _common_suffix_length(left: str, right: str) -> int:
    limit = min(len(left), len(right))
    count = 0
    while count < limit and left[-1 - count] == right[-1 - count]:
        count += 1
    return count


def _diff_middle(left: str, right: str) -> list[tuple[bool, str, str]]:
    """Pieces (is_changed, left_text, right_text) covering the differing middles of two lines."""
    if not left or not right or len(left) + len(right) > _MAX_INLINE_CHARS:
        return [(True, left, right)]
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    pieces = [
        (tag != "equal", left[i1:i2], right[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    ]
    # Middles start and end with a difference, so every equal piece sits between two changes.
    return [
        (True, left_text, right_text)
        if not is_changed and len(left_text) < _MIN_EQUAL_ISLAND
        else (is_changed, left_text, right_text)
        for is_changed, left_text, right_text in pieces
    ]


def _merge_segments(pieces: Iterable[tuple[str, bool]]) -> tuple[Segment, ...]:
    merged: list[Segment] = []
    for text, is_changed in pieces:
        if not text:
            continue
        if merged and merged[-1].is_changed == is_changed:
            merged[-1] = Segment(merged[-1].text + text, is_changed)
        else:
            merged.append(Segment(text, is_changed))
    return tuple(merged)


def _plain_cell(number: int, line: str) -> Cell:
    return Cell(number=number, segments=(Segment(line, False),) if line else ())


def _line_opcodes(
    left_lines: Sequence[str], right_lines: Sequence[str]
) -> list[tuple[str, int, int, int, int]]:
    """SequenceMatcher opcodes, with common leading and trailing lines matched up front."""
    # SequenceMatcher is quadratic on repetitive text (YAML is); most diffs touch a few lines of
    # a long body, so trimming the shared head and tail keeps big objects fast.
    limit = min(len(left_lines), len(right_lines))
    head = 0
    while head < limit and left_lines[head] == right_lines[head]:
        head += 1
    tail = 0
    while tail < limit - head and left_lines[-1 - tail] == right_lines[-1 - tail]:
        tail += 1
    left_end, right_end = len(left_lines) - tail, len(right_lines) - tail
    opcodes: list[tuple[str, int, int, int, int]] = [("equal", 0, head, 0, head)] if head else []
    # autojunk would treat frequent YAML lines ("- get") as junk and misalign long bodies.
    matcher = difflib.SequenceMatcher(
        None, left_lines[head:left_end], right_lines[head:right_end], autojunk=False
    )
    opcodes.extend(
        (tag, i1 + head, i2 + head, j1 + head, j2 + head)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
    )
    if tail:
        opcodes.append(("equal", left_end, len(left_lines), right_end, len(right_lines)))
    return opcodes


def _align_rows(left_lines: Sequence[str], right_lines: Sequence[str]) -> list[Row]:
    rows: list[Row] = []
    for tag, i1, i2, j1, j2 in _line_opcodes(left_lines, right_lines):
        if tag == "equal":
            rows.extend(
                Row(
                    RowKind.EQUAL,
                    _plain_cell(i1 + offset + 1, left_lines[i1 + offset]),
                    _plain_cell(j1 + offset + 1, right_lines[j1 + offset]),
                )
                for offset in range(i2 - i1)
            )
            continue
        # delete and insert are replace blocks with one empty side; lines pair one-to-one.
        for offset in range(max(i2 - i1, j2 - j1)):
            left_index, right_index = i1 + offset, j1 + offset
            has_left, has_right = left_index < i2, right_index < j2
            if has_left and has_right:
                left_segments, right_segments = split_changed_line(
                    left_lines[left_index], right_lines[right_index]
                )
                rows.append(
                    Row(
                        RowKind.CHANGED,
                        Cell(left_index + 1, left_segments),
                        Cell(right_index + 1, right_segments),
                    )
                )
            elif has_left:
                rows.append(
                    Row(RowKind.REMOVED, _plain_cell(left_index + 1, left_lines[left_index]), None)
                )
            else:
                rows.append(
                    Row(RowKind.ADDED, None, _plain_cell(right_index + 1, right_lines[right_index]))
                )
    return rows


def _fold_equal_runs(rows: Sequence[Row], context: int) -> list[Row]:
    folded: list[Row] = []
    start = 0
    while start < len(rows):
        if rows[start].kind is not RowKind.EQUAL:
            folded.append(rows[start])
            start += 1
            continue
        end = start
        while end < len(rows) and rows[end].kind is RowKind.EQUAL:
            end += 1
        run = rows[start:end]
        # No context is needed at the edges of the document, only next to a change.
        head = 0 if start == 0 else context
        tail = 0 if end == len(rows) else context
        if len(run) > 2 * context and len(run) > head + tail:
            folded.extend(run[:head])
            folded.append(Row(RowKind.FOLD, None, None, tuple(run[head : len(run) - tail])))
            folded.extend(run[len(run) - tail :])
        else:
            folded.extend(run)
        start = end
    return folded


def _compact_json(value: JsonValue) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _one_line(text, _MAX_PATCH_VALUE_CHARS)


def _one_line(text: str, limit: int) -> str:
    """Escape control characters so the text stays on one line, and truncate it."""
    escaped = "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text[:limit]
    )
    if len(text) <= limit:
        return escaped
    return f"{escaped}… ({len(text) - limit} more characters)"
