"""Request body -> items: EventList (v1/v1beta1), a single Event, a JSON array, or NDJSON.

Envelope problems raise InvalidPayload (the whole request is refused); problems with one item
travel with that item to the quarantine.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from app.audit.intake import RawItem, UnparsableJson, check_storable, parse_json
from app.audit.normalize import SUPPORTED_API_VERSIONS
from app.errors import InvalidPayload, PayloadTooLarge


def gunzip(data: bytes, *, limit: int) -> bytes:
    """Decompress gzip data, refusing output beyond limit bytes (no decompression bombs)."""
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        message = f"Content-Encoding is gzip but the body is not gzip data: {exc}"
        raise InvalidPayload(message) from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
    if not decompressor.eof:
        raise InvalidPayload("gzip body is truncated")
    return out


def split_body(data: bytes) -> list[RawItem]:
    """Split a body into items; raise InvalidPayload when it is no recognisable shape."""
    stripped = data.removeprefix(b"\xef\xbb\xbf").strip()  # a UTF-8 byte-order mark is harmless
    if not stripped:
        raise InvalidPayload("empty body: send an audit.k8s.io EventList, an Event or NDJSON")
    try:
        whole = parse_json(stripped, check=False)
    except UnparsableJson as exc:
        if b"\n" in stripped:
            return _split_lines(stripped)
        raise InvalidPayload(f"body is {exc}") from None
    if isinstance(whole, list):
        return [_item(value, f"item {i}") for i, value in enumerate(whole)]
    if not isinstance(whole, dict):
        raise InvalidPayload("body must be a JSON object (EventList or Event), array or NDJSON")
    kind = whole.get("kind")
    if kind == "EventList":
        return _split_event_list(whole)
    if kind in ("Event", None):
        return [_item(whole, None, raw=stripped)]
    raise InvalidPayload(f"kind {str(kind)[:80]!r} is not accepted: send EventList or Event")


def _split_event_list(envelope: dict[str, Any]) -> list[RawItem]:
    api_version = envelope.get("apiVersion")
    if api_version is not None and api_version not in SUPPORTED_API_VERSIONS:
        raise InvalidPayload(
            f"EventList apiVersion {str(api_version)[:80]!r} is not supported"
            f" (accepted: {', '.join(SUPPORTED_API_VERSIONS)})"
        )
    items = envelope.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise InvalidPayload("EventList items must be an array")
    return [_item(value, f"items[{i}]") for i, value in enumerate(items)]


def _item(value: Any, origin: str | None, raw: bytes | None = None) -> RawItem:
    try:
        encoded = raw if raw is not None else json.dumps(value, ensure_ascii=False).encode()
    except (UnicodeEncodeError, ValueError):
        encoded = json.dumps(value).encode()
    try:
        check_storable(value)
    except UnparsableJson as exc:
        return RawItem(raw=encoded, error=str(exc), origin=origin)
    return RawItem(raw=encoded, value=value, origin=origin)


def _split_lines(data: bytes) -> list[RawItem]:
    items = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        origin = f"line {number}"
        try:
            items.append(RawItem(raw=line, value=parse_json(line), origin=origin))
        except UnparsableJson as exc:
            items.append(RawItem(raw=line, error=str(exc), origin=origin))
    return items
