"""One path from received items to storable rows, shared by webhook, file import and poller.

Parses JSON safely, unwraps known envelopes, normalises and redacts each item, and sorts
the results into event rows and quarantine rows. Pure: no I/O, no database.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.audit.normalize import InvalidEvent, normalize_event, reconstruct_event
from app.audit.raw_redact import UnsafeToScan, redact_raw
from app.audit.redact import Redactor

# Kubernetes objects nest a few dozen levels; far deeper input only threatens recursion limits
# further down (rendering, serialising), so it is quarantined.
MAX_DEPTH = 200
# orjson.dumps refuses containers nested deeper than this (tests/audit/test_json_storage.py
# pins it): wrapping a value in (limit - n) lists makes orjson itself enforce a depth of n.
_ORJSON_MAX_DEPTH = 254
# The audit_event columns of type jsonb, by how deep they sit in the received event: the
# bodies are one level below the event itself (MAX_DEPTH counts from the event).
JSON_COLUMN_DEPTHS = {
    "raw": MAX_DEPTH,
    "request_object": MAX_DEPTH - 1,
    "response_object": MAX_DEPTH - 1,
    "source_meta": MAX_DEPTH,
}


class UnparsableJson(ValueError):
    """The bytes are not one JSON value that PostgreSQL can store."""


@dataclass(frozen=True)
class RawItem:
    """One received item: its bytes (None when it came parsed inside a larger document: then
    made from value only if it is quarantined), and its parsed value unless parsing failed."""

    raw: bytes | None
    value: Any = None
    error: str | None = None
    origin: str | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class QuarantineRow:
    """raw is what may be shown (secrets redacted, or empty when the bytes could not be
    scanned); sealed, when set, the received bytes encrypted; digest identifies repeats."""

    raw: bytes
    error: str
    origin: str | None
    is_redacted: bool
    sealed: bytes | None = None
    digest: bytes = b""

    def __post_init__(self) -> None:
        if not self.digest:
            object.__setattr__(self, "digest", hashlib.sha256(self.raw).digest())


@dataclass
class PreparedBatch:
    events: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)


class JsonObject(dict[str, Any]):
    """A JSON object as prepared for storage: the value, plus json_text, its one serialisation
    (checked storable), which COPY writes as it is."""

    __slots__ = ("json_text",)
    json_text: str


class JsonArray(list[Any]):
    """A JSON array as prepared for storage (see JsonObject)."""

    __slots__ = ("json_text",)
    json_text: str


class _NonFinite(float):
    """A number literal beyond float range (1e999). Parsed, so that the item can still be
    redacted before it is quarantined; refused when serialised (orjson would write null)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_float(text: str) -> float:
    number = float(text)
    return number if math.isfinite(number) else _NonFinite(number)


def parse_json(data: bytes | str, *, check: bool = True) -> Any:
    """Parse strict JSON (no NaN/Infinity, valid UTF-8; with check, no NUL, no lone surrogates).

    The stdlib parses: it keeps integers beyond 64 bits exact (orjson.loads turns them into
    floats) and is as fast as orjson.loads on audit batches (bench/ingest_throughput.py)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise UnparsableJson(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise UnparsableJson("JSON nested too deeply") from None
    except ValueError as exc:
        raise UnparsableJson(f"not valid JSON: {exc}") from None
    if check:
        check_storable(value)
    return value


def check_storable(value: Any) -> None:
    """Raise UnparsableJson if PostgreSQL's jsonb/text could not hold value (any value: the
    stdlib's pass also catches floats that are not finite, which orjson would write as null)."""
    _check_nul(value, _dump_stdlib(value, depth=MAX_DEPTH))


def dump_json(value: Any, *, depth: int = MAX_DEPTH) -> str:
    """value as JSON text for a jsonb column, checked in the same pass: raise UnparsableJson
    with the reason when PostgreSQL could not hold it (NUL, a lone surrogate, a number beyond
    float range) or it nests deeper than depth levels. One orjson pass; the stdlib only for
    documents with integers beyond 64 bits, which it keeps exact.

    value must come from parse_json or have passed check_storable: orjson writes a float that
    is not finite as null, and parse_json marks those (_NonFinite) so that orjson refuses them."""
    try:
        data = orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError
        text = _dump_refused(value, str(exc), depth=depth)
    else:
        # Fewer containers than depth cannot nest deeper: skip the check for most events.
        if data.count(b"[") + data.count(b"{") > depth:
            _check_depth(value, depth)
        text = data.decode("utf-8")
    _check_nul(value, text)
    return text


def _check_nul(value: Any, text: str) -> None:
    if "\\u0000" in text and _has_nul(value):
        raise UnparsableJson("contains a NUL character (\\u0000), which PostgreSQL cannot store")


def _check_depth(value: Any, depth: int) -> None:
    pad = _ORJSON_MAX_DEPTH - depth
    wrapped = value
    for _ in range(pad):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except TypeError:
        raise UnparsableJson(f"JSON nested deeper than {MAX_DEPTH} levels") from None


def _dump_refused(value: Any, reason: str, *, depth: int) -> str:
    """What orjson refused: say why, or serialise with the stdlib (big integers)."""
    if "surrogates" in reason:
        raise UnparsableJson("contains a lone UTF-16 surrogate (\\ud800-\\udfff)")
    if "Recursion limit" in reason:
        raise UnparsableJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    if _NonFinite.__name__ in reason:
        raise UnparsableJson("contains a number too large to store (e.g. 1e999)")
    if "64-bit" not in reason:
        raise UnparsableJson(f"cannot be stored as JSON: {reason}")
    return _dump_stdlib(value, depth=depth)


def _dump_stdlib(value: Any, *, depth: int) -> str:
    try:
        # allow_nan=False: 1e999 parses to inf, which jsonb cannot hold.
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnparsableJson("contains a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    except RecursionError:
        raise UnparsableJson("JSON nested too deeply") from None
    except ValueError:
        raise UnparsableJson("contains a number too large to store (e.g. 1e999)") from None
    # Fewer containers than depth cannot nest deeper: skip the walk for most values.
    if text.count("[") + text.count("{") > depth and _depth(value) > depth:
        raise UnparsableJson(f"JSON nested deeper than {MAX_DEPTH} levels")
    return text


def _with_json_text(value: Any, text: str) -> Any:
    """value carrying its serialisation when it is an object or array (scalars are cheap to
    serialise again)."""
    wrapped: JsonObject | JsonArray
    if isinstance(value, dict):
        wrapped = JsonObject(value)
    elif isinstance(value, list):
        wrapped = JsonArray(value)
    else:
        return value
    wrapped.json_text = text
    return wrapped


def serialise_json_columns(row: dict[str, Any]) -> None:
    """Serialise a normalised row's jsonb columns once, in place (see JsonObject); raise
    UnparsableJson when one cannot be stored."""
    for column, depth in JSON_COLUMN_DEPTHS.items():
        value = row[column]
        if value is not None:
            row[column] = _with_json_text(value, dump_json(value, depth=depth))


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def item_from_bytes(raw: bytes, origin: str | None) -> RawItem:
    """One received item. Bad JSON becomes an item with its error; JSON that parses but
    cannot be stored keeps its value too, so its quarantined copy can be redacted."""
    try:
        value = parse_json(raw, check=False)
    except UnparsableJson as exc:
        return RawItem(raw=raw, error=str(exc), origin=origin)
    return item_from_value(value, origin, raw=raw, is_parsed=True)


def item_from_value(
    value: Any,
    origin: str | None,
    *,
    raw: bytes | None = None,
    meta: Mapping[str, Any] | None = None,
    is_parsed: bool = False,
) -> RawItem:
    """An item already parsed (from an EventList, an ES hit), checked for storability now,
    or, is_parsed (it came from parse_json), when prepare_batch serialises it (once)."""
    try:
        if not is_parsed:
            check_storable(value)
        if meta is not None:
            check_storable(meta)  # it lands in the source_meta column
    except UnparsableJson as exc:
        return RawItem(raw=raw, value=value, error=str(exc), origin=origin, meta=meta)
    return RawItem(raw=raw, value=value, origin=origin, meta=meta)


def unwrap_envelope(value: Any) -> tuple[Any, dict[str, Any] | None]:
    """Take the Event out of known shipper envelopes (AKS diagnostic records); else unchanged."""
    if isinstance(value, dict) and "auditID" not in value:
        props = value.get("properties")
        if isinstance(props, dict) and "log" in props:
            inner = props["log"]
            if isinstance(inner, str):
                try:
                    inner = parse_json(inner)
                except UnparsableJson:
                    return value, None
            if isinstance(inner, dict) and "auditID" in inner:
                meta = {"envelope": "aks", "category": value.get("category")}
                return inner, meta
    return value, None


def prepare_batch(
    items: Iterable[RawItem], *, cluster: str, source: str, redactor: Redactor
) -> PreparedBatch:
    """Normalise every item and serialise its jsonb columns once (see JsonObject); what fails
    goes to quarantine with its reason, never dropped."""
    batch = PreparedBatch()
    for item in items:
        if item.error is not None:
            batch.quarantined.append(quarantine_row(item, item.error, redactor))
            continue
        event, envelope = unwrap_envelope(item.value)
        meta = {**(item.meta or {}), **(envelope or {})} or None
        try:
            row = normalize_event(
                event, cluster=cluster, source=source, source_meta=meta, redactor=redactor
            )
        except InvalidEvent as exc:
            batch.quarantined.append(
                quarantine_row(item, str(exc), redactor, is_redacted=exc.is_redacted)
            )
            continue
        try:
            serialise_json_columns(row)
        except UnparsableJson as exc:
            batch.quarantined.append(
                quarantine_row(item, str(exc), redactor, is_redacted=row["is_redacted"])
            )
            continue
        batch.events.append(row)
    return batch


EventKey = tuple[str, str, str]


def event_key(row: Mapping[str, Any]) -> EventKey:
    """The identity of a stored event: (cluster, auditID, stage)."""
    return (row["cluster"], row["audit_id"], row["stage"])


def conflict_row(row: Mapping[str, Any], *, stored_as: str) -> QuarantineRow:
    """A second, different event under an identity already taken. Kept apart, never merged:
    a reused Audit-ID must not hide a request, nor overwrite the event stored first."""
    cluster, audit_id, stage = event_key(row)
    event = reconstruct_event(row["raw"], row["request_object"], row["response_object"])
    return QuarantineRow(
        raw=json.dumps(event, ensure_ascii=False).encode("utf-8"),
        error=(
            f"auditID {audit_id!r} stage {stage} is already stored ({stored_as}) with"
            " different content"
        ),
        origin=None,
        is_redacted=bool(row["is_redacted"]),
    )


def quarantine_row(
    item: RawItem, error: str, redactor: Redactor, *, is_redacted: bool | None = None
) -> QuarantineRow:
    """The item's bytes for the quarantine; re-serialised with secrets redacted when it parsed
    (is_redacted: whether normalisation redacted item.value in place; None: it did not run).
    Bytes that did not parse are kept sealed (encrypted), beside a copy redacted by a tolerant
    scan, or no clear copy at all when the scan cannot vouch for the bytes."""
    if item.value is None:
        assert item.raw is not None  # an item that did not parse has only its bytes
        sealer = redactor.sealer
        try:
            shown, is_redacted = redact_raw(item.raw, redactor.marker)
        except UnsafeToScan:
            shown, is_redacted = b"", True
        if not is_redacted:
            return QuarantineRow(raw=item.raw, error=error, origin=item.origin, is_redacted=False)
        return QuarantineRow(
            raw=shown,
            error=error,
            origin=item.origin,
            is_redacted=is_redacted,
            sealed=sealer.seal(item.raw),
            digest=sealer.digest(item.raw),
        )
    if item.raw is not None:
        # Start again from the received bytes: normalisation may have redacted item.value
        # already, and then a second pass would not tell that anything was redacted.
        try:
            value = parse_json(item.raw, check=False)
        except UnparsableJson:
            value = item.value
        is_redacted, value = _redact_for_quarantine(value, redactor)
        # ASCII escapes keep NUL and lone surrogates representable in the stored bytes.
        raw = json.dumps(value, ensure_ascii=True).encode() if is_redacted else item.raw
        return QuarantineRow(raw=raw, error=error, origin=item.origin, is_redacted=is_redacted)
    # Received inside a larger document: only the value is left (redacted in place when
    # normalisation got that far; redacting again changes nothing there).
    redacted_now, value = _redact_for_quarantine(item.value, redactor)
    raw = json.dumps(value, ensure_ascii=True).encode()
    return QuarantineRow(
        raw=raw, error=error, origin=item.origin, is_redacted=bool(is_redacted) or redacted_now
    )


def _redact_for_quarantine(value: Any, redactor: Redactor) -> tuple[bool, Any]:
    """Redact the event in value; an envelope whose event is a JSON string (AKS
    properties.log) gets the redacted event back as its string, since redacting the parsed
    copy leaves the string, secrets and all, as it was."""
    inner, _ = unwrap_envelope(value)
    is_redacted = redactor.redact_event(inner)
    props = value.get("properties") if isinstance(value, dict) else None
    if is_redacted and isinstance(props, dict) and isinstance(props.get("log"), str):
        log = json.dumps(inner, ensure_ascii=True)
        value = {**value, "properties": {**props, "log": log}}
    return is_redacted, value
