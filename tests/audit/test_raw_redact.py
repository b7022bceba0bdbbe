"""The tolerant byte scan of quarantined items: whatever the damage (cut anywhere, one byte
inserted or deleted anywhere), no piece of a planted secret stays in the clear copy."""

from __future__ import annotations

import base64
import json
import random

import pytest

from app.audit.intake import item_from_bytes, quarantine_row
from app.audit.raw_redact import UnsafeToScan, redact_raw
from app.audit.redact import Redactor
from tests.ingest.test_quarantine_secrets import (
    PLANTED,
    PLANTED_APPLIED,
    PLANTED_TOKEN,
    planted_secret,
)

JUNK = [b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b"\xff", b"NaN", b'\\"', b" "]


def clear_pieces(original: bytes) -> list[bytes]:
    """8-byte pieces of the planted values that appear nowhere else in the event."""
    values = [v.encode() for v in (PLANTED, PLANTED_TOKEN, PLANTED_APPLIED)]
    values.append(base64.b64encode(PLANTED.encode()))
    rest = original
    for value in values:
        rest = rest.replace(value, b"")
    return [v[i : i + 8] for v in values for i in range(len(v) - 7) if v[i : i + 8] not in rest]


def damaged_versions(original: bytes, count: int) -> list[bytes]:
    rng = random.Random(8)
    versions = [original[:cut] for cut in range(len(original))]
    for _ in range(count):
        at = rng.randrange(len(original))
        versions.append(original[:at] + rng.choice(JUNK) + original[at:])
        at = rng.randrange(len(original))
        versions.append(original[:at] + original[at + 1 :])
        cut = rng.randrange(at, len(original))  # two damages: a change, then a cut
        versions.append((original[:at] + rng.choice(JUNK) + original[at:])[:cut])
    return versions


def test_no_piece_of_a_secret_survives_any_single_damage() -> None:
    redactor = Redactor(b"k" * 32)
    original = json.dumps(planted_secret()).encode()
    pieces = clear_pieces(original)
    scanned = 0
    for data in damaged_versions(original, 1500):
        item = item_from_bytes(data, "line 1")
        if item.value is not None:
            continue  # still valid JSON: the structured redactor's case
        row = quarantine_row(item, "damaged", redactor)
        leaked = [p for p in pieces if p in row.raw]
        assert not leaked, (data, leaked)
        if row.raw:
            scanned += 1
    assert scanned > 1000  # most damage still leaves a readable, redacted copy


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"data": {"k": "c2Vj', b'{"data": {"k": "M"'),
        (b'{"a": NaN, "stringData": {"k": 1}}', b'{"a": NaN, "stringData": {"k": "M"}}'),
        (
            b'[{"op": "add", "path": "/data/k", "value": "s"}]',
            b'[{"op": "add", "path": "/data/k", "value": "M"}]',
        ),  # fmt: skip
        (b'{"spec": {"token": "eyJ', b'{"spec": {"token": "M"'),
    ],
)
def test_secret_values_are_replaced(data: bytes, expected: bytes) -> None:
    assert redact_raw(data, lambda value: "M") == (expected, True)


@pytest.mark.parametrize(
    "data",
    [b'{"a": 1 "data": {"k": "s"}}', b'{"a": 1}}', b'{"da\xfftta": {"k": "s"}', b'{"a": x}'],
)
def test_what_does_not_read_as_damaged_json_is_refused(data: bytes) -> None:
    with pytest.raises(UnsafeToScan):
        redact_raw(data, lambda value: "M")
