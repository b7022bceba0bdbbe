"""One path from received items to storable rows, shared by webhook, file import and poller.

Parses JSON safely, unwraps known envelopes, normalises and redacts each item, and sorts
the results into event rows and quarantine rows. Pure: no I/O, no database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.audit.normalize import InvalidEvent, normalize_event, reconstruct_event
from app.audit.raw_redact import UnsafeToScan, redact_raw
from app.audit.redact import Redactor

# Kubernetes objects nest a few dozen levels; far deeper input only threatens recursion limits
# further down (rendering, serialising), so it is quarantined.
MAX_DEPTH = 200


class UnparsableJson(ValueError):
    """The bytes are not one JSON value that PostgreSQL can store."""


@dataclass(frozen=True)
class RawItem:
    """One received item: its bytes, and its parsed value unless parsing failed."""

    raw: bytes
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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes | str, *, check: bool = True) -> Any:
    """Parse strict JSON (no NaN/Infinity, valid UTF-8; with check, no NUL, no lone surrogates)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise UnparsableJson(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise UnparsableJson("JSON nested too deeply") from None
    except ValueError as exc:
        raise UnparsableJson(f"not valid JSON: {exc}") from None
    if check:
        check_storable(value)
    return value


def check_storable(value: Any) -> None:
    """Raise UnparsableJson if PostgreSQL's jsonb/text could not hold value."""
    try:
        # allow_nan=False: 1e999 parses to inf, which jsonb cannot hold.
        dumped = json.dumps(value, ensure_ascii=False, allow_nan=False)
        dumped.encode("utf-8")
    except UnicodeEncodeError:
        raise UnparsableJson("contains a lone UTF-16 surrogate (\\ud800-\\udfff)") from None
    except RecursionError:
        raise UnparsableJson("JSON nested too deeply") from None
    except ValueError:
        raise UnparsableJson("contains a number too large to store (e.g. 1e999)") from None
    if "\\u0000" in dumped and _has_nul(value):
        raise UnparsableJson("contains a NUL character (\\u0000), which PostgreSQL cannot store")
    # Fewer containers than MAX_DEPTH cannot nest deeper: skip the walk for most events.
    if dumped.count("[") + dumped.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise UnparsableJson(f"JSON nested deeper than {MAX_DEPTH} levels")


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
    return item_from_value(value, origin, raw=raw)


def item_from_value(
    value: Any,
    origin: str | None,
    *,
    raw: bytes | None = None,
    meta: Mapping[str, Any] | None = None,
) -> RawItem:
    """An item already parsed (from an EventList, an ES hit), checked for storability."""
    if raw is None:
        raw = json.dumps(value, ensure_ascii=True).encode()
    try:
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
    """Normalise every item; what fails goes to quarantine with its reason, never dropped."""
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
            batch.quarantined.append(quarantine_row(item, str(exc), redactor))
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


def quarantine_row(item: RawItem, error: str, redactor: Redactor) -> QuarantineRow:
    """The item's bytes for the quarantine; re-serialised with secrets redacted when it parsed.
    Bytes that did not parse are kept sealed (encrypted), beside a copy redacted by a tolerant
    scan, or no clear copy at all when the scan cannot vouch for the bytes."""
    if item.value is None:
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
    # Start again from the received bytes: normalisation may have redacted item.value already,
    # and then a second pass would not tell that anything was redacted.
    try:
        value = parse_json(item.raw, check=False)
    except UnparsableJson:
        value = item.value
    inner, _ = unwrap_envelope(value)
    is_redacted = redactor.redact_event(inner)
    # ASCII escapes keep NUL and lone surrogates representable in the stored bytes.
    raw = json.dumps(value, ensure_ascii=True).encode() if is_redacted else item.raw
    return QuarantineRow(raw=raw, error=error, origin=item.origin, is_redacted=is_redacted)
