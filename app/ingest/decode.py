"""Request body -> items: EventList (v1/v1beta1), a single Event, a JSON array, or NDJSON.

Envelope problems raise InvalidPayload (the whole request is refused); problems with one item
travel with that item to the quarantine, so one bad event never costs its neighbours.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

from app.audit.intake import RawItem, UnparsableJson, item_from_bytes, item_from_value, parse_json
from app.audit.normalize import SUPPORTED_API_VERSIONS
from app.errors import InvalidPayload, PayloadTooLarge

# A JSON string, or one structural character: enough to find the top-level elements of a
# document Python's parser refuses as a whole (an item nested too deeply, a huge number).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)


def gunzip(data: bytes, *, limit: int) -> bytes:
    """Decompress gzip data (every member of a concatenated stream), refusing output beyond
    limit bytes (no decompression bombs)."""
    out = bytearray()
    rest = data
    while rest:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            message = f"Content-Encoding is gzip but the body is not gzip data: {exc}"
            raise InvalidPayload(message) from None
        if len(out) > limit or decompressor.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body exceeds the limit of {limit} bytes")
        if not decompressor.eof:
            raise InvalidPayload("gzip body is truncated")
        rest = decompressor.unused_data
    return bytes(out)


def split_body(data: bytes, *, max_items: int) -> list[RawItem]:
    """Split a body into items; raise InvalidPayload when it is no recognisable shape and
    PayloadTooLarge when it holds more than max_items items."""
    stripped = data.removeprefix(b"\xef\xbb\xbf").strip()  # a UTF-8 byte-order mark is harmless
    if not stripped:
        raise InvalidPayload("empty body: send an audit.k8s.io EventList, an Event or NDJSON")
    try:
        whole = parse_json(stripped, check=False)
    except UnparsableJson as exc:
        items = _split_structure(stripped)
        if items is None and b"\n" in stripped:
            items = _split_lines(stripped, max_items=max_items)
        if items is None:
            raise InvalidPayload(f"body is {exc}") from None
        return _checked_count(items, max_items)
    if isinstance(whole, list):
        items = [
            item_from_value(value, f"item {i}", is_parsed=True) for i, value in enumerate(whole)
        ]
        return _checked_count(items, max_items)
    if not isinstance(whole, dict):
        raise InvalidPayload("body must be a JSON object (EventList or Event), array or NDJSON")
    kind = whole.get("kind")
    if kind == "EventList":
        _check_event_list(whole)
        values = whole.get("items") or []
        if not isinstance(values, list):
            raise InvalidPayload("EventList items must be an array")
        items = [
            item_from_value(value, f"items[{i}]", is_parsed=True) for i, value in enumerate(values)
        ]
        return _checked_count(items, max_items)
    if kind in ("Event", None):
        return [item_from_value(whole, None, raw=stripped, is_parsed=True)]
    raise InvalidPayload(f"kind {str(kind)[:80]!r} is not accepted: send EventList or Event")


def _checked_count(items: list[RawItem], max_items: int) -> list[RawItem]:
    if len(items) > max_items:
        raise PayloadTooLarge(
            f"{len(items)} items exceed the limit of {max_items} per request: send smaller batches"
        )
    return items


def _check_event_list(envelope: dict[str, Any]) -> None:
    api_version = envelope.get("apiVersion")
    if api_version is not None and api_version not in SUPPORTED_API_VERSIONS:
        raise InvalidPayload(
            f"EventList apiVersion {str(api_version)[:80]!r} is not supported"
            f" (accepted: {', '.join(SUPPORTED_API_VERSIONS)})"
        )


def _split_lines(data: bytes, *, max_items: int) -> list[RawItem]:
    if data.count(b"\n") >= max_items:  # refuse before parsing millions of lines
        _checked_count([RawItem(raw=b"")] * (data.count(b"\n") + 1), max_items)
    return [
        item_from_bytes(line.strip(), f"line {number}")
        for number, line in enumerate(data.split(b"\n"), start=1)
        if line.strip()
    ]


def _split_structure(data: bytes) -> list[RawItem] | None:
    """Items of an EventList or array that does not parse as a whole, each parsed on its own;
    None when the body is not one balanced JSON object or array."""
    top = _top_level(data)
    if top is None:
        return None
    opener, parts = top
    if opener == b"[":
        return [item_from_bytes(value, f"item {i}") for i, (_, value) in enumerate(parts)]
    envelope: dict[str, Any] = {}
    items_slice = None
    for key, value in parts:
        try:
            name = json.loads(key) if key is not None else None
        except ValueError:
            return None
        if name == "items":
            items_slice = value
        elif name in ("kind", "apiVersion"):
            try:
                envelope[name] = json.loads(value)
            except ValueError:
                return None
    if envelope.get("kind") != "EventList":
        return None  # a single Event that does not parse: one item for the caller to refuse
    _check_event_list(envelope)
    inner = _top_level(items_slice) if items_slice is not None else (b"[", [])
    if inner is None or inner[0] != b"[":
        raise InvalidPayload("EventList items must be an array")
    return [item_from_bytes(value, f"items[{i}]") for i, (_, value) in enumerate(inner[1])]


def _top_level(data: bytes) -> tuple[bytes, list[tuple[bytes | None, bytes]]] | None:
    """The opening bracket and the (key, value) byte slices of a document's top-level
    container; None unless data is exactly one balanced object or array."""
    depth = 0
    opener = b""
    start = 0
    key: bytes | None = None
    parts: list[tuple[bytes | None, bytes]] = []
    for match in _TOKEN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            if depth == 0:
                if match.start() != 0:
                    return None
                opener, start = token, match.end()
            depth += 1
        elif token in (b"]", b"}"):
            depth -= 1
            if depth == 0:
                piece = data[start : match.start()].strip()
                if piece:
                    parts.append((key, piece))
                return (opener, parts) if not data[match.end() :].strip() else None
            if depth < 0:
                return None
        elif depth == 1 and token == b",":
            parts.append((key, data[start : match.start()].strip()))
            start, key = match.end(), None
        elif depth == 1 and token == b":" and opener == b"{":
            key, start = data[start : match.start()].strip(), match.end()
    return None
