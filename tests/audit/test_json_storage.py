"""Parse once, serialise once: what prepare_batch hands to COPY keeps what jsonb needs.

Integers beyond 64 bits stay exact, duplicate keys and key order behave as json.loads, and NUL,
lone surrogates, numbers beyond float range and deep nesting are refused with clear reasons.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from sqlalchemy.dialects.postgresql import JSONB

from app.audit.intake import (
    JSON_COLUMN_DEPTHS,
    MAX_DEPTH,
    PreparedBatch,
    UnparsableJson,
    dump_json,
    prepare_batch,
)
from app.audit.models import AuditEvent
from app.audit.queries import EVENT_COLUMNS, _copy_value
from app.audit.redact import Redactor
from app.ingest.decode import split_body
from tests.builders import audit_event, event_list, secret_event

REDACTOR = Redactor(b"json-storage-test-key-0123456789")
SECRET = "aHVudGVyMg=="


def prepare(body: bytes) -> PreparedBatch:
    return prepare_batch(
        split_body(body, max_items=100), cluster="c", source="webhook", redactor=REDACTOR
    )


def copied(row: dict[str, Any], column: str) -> Any:
    """The column's value as COPY writes it, parsed back by the stdlib (as jsonb would)."""
    text = _copy_value(column, row[column])
    assert isinstance(text, str)
    return json.loads(text)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def with_literal(literal: str, **overrides: Any) -> bytes:
    """An EventList of one event whose requestObject.x is a literal json.dumps cannot write."""
    text = json.dumps(event_list([audit_event(requestObject={"x": "@@"}, **overrides)]))
    return text.replace('"@@"', literal).encode()


BOUNDARY_INTEGERS = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**80, -(2**70)]


@pytest.mark.parametrize("shape", ["event-list", "ndjson"])
def test_integers_beyond_64_bits_stay_exact(shape: str) -> None:
    event = audit_event(requestObject={"n": BOUNDARY_INTEGERS}, extra={"n": BOUNDARY_INTEGERS})
    body = json.dumps(event_list([event]) if shape == "event-list" else event).encode()
    batch = prepare(body)
    assert not batch.quarantined
    (row,) = batch.events
    assert copied(row, "request_object") == {"n": BOUNDARY_INTEGERS}
    assert copied(row, "raw")["extra"] == {"n": BOUNDARY_INTEGERS}
    assert all(type(n) is int for n in copied(row, "request_object")["n"])


def test_ordinary_events_are_serialised_once_by_orjson() -> None:
    event = audit_event(requestObject={"f": [0.1, 1.5e300, -0.0, 5e-324], "s": "ünï 𝄞 \u2028"})
    (row,) = prepare(json.dumps(event_list([event])).encode()).events
    for column in ("raw", "request_object"):
        # The text COPY writes is the one made at intake, and it is the value, JSON-equal.
        assert _copy_value(column, row[column]) is row[column].json_text
        assert row[column].json_text == orjson.dumps(row[column]).decode()
    assert copied(row, "request_object") == event["requestObject"]


def test_duplicate_keys_behave_as_json_loads() -> None:
    text = json.dumps(audit_event(requestObject={"a": 1, "b": 2}))
    body = text.replace('{"a": 1, "b": 2}', '{"a": 1, "b": 2, "a": 3}').encode()
    (row,) = prepare(body).events
    # The last value wins, at the first key's place: as Python's json and jsonb keep them.
    assert list(copied(row, "request_object").items()) == [("a", 3), ("b", 2)]


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ('"a\\u0000b"', "contains a NUL character (\\u0000), which PostgreSQL cannot store"),
        ('"\\ud800"', "contains a lone UTF-16 surrogate (\\ud800-\\udfff)"),
        ("1e999", "contains a number too large to store (e.g. 1e999)"),
        ("-1e999", "contains a number too large to store (e.g. 1e999)"),
        (json.dumps(nested(MAX_DEPTH)), f"JSON nested deeper than {MAX_DEPTH} levels"),
        (json.dumps(nested(260)), f"JSON nested deeper than {MAX_DEPTH} levels"),
    ],
    ids=["NUL", "lone-surrogate", "1e999", "-1e999", "just-too-deep", "deeper-than-orjson"],
)
def test_unstorable_values_are_quarantined_with_their_reason(literal: str, reason: str) -> None:
    good = audit_event()
    body = with_literal(literal).replace(
        b'"items": [', b'"items": [' + json.dumps(good).encode() + b","
    )
    batch = prepare(body)
    assert [row["audit_id"] for row in batch.events] == [good["auditID"]]
    assert [q.error for q in batch.quarantined] == [reason]


def test_unstorable_big_integer_document_is_still_refused() -> None:
    # The stdlib path (orjson refuses the big integer) checks just as much.
    batch = prepare(with_literal('[18446744073709551616, "a\\u0000b"]'))
    assert [q.error for q in batch.quarantined] == [
        "contains a NUL character (\\u0000), which PostgreSQL cannot store"
    ]


def test_nan_and_infinity_literals_are_refused() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        batch = prepare(with_literal(literal))
        assert not batch.events
        assert [q.error for q in batch.quarantined] == [
            f"not valid JSON: {literal} is not valid JSON"
        ]


def test_depth_limit_is_the_same_for_every_column() -> None:
    # MAX_DEPTH counts from the event: a body sits one level below it.
    assert dump_json(nested(MAX_DEPTH - 1), depth=MAX_DEPTH) == json.dumps(
        nested(MAX_DEPTH - 1)
    ).replace(" ", "")
    with pytest.raises(UnparsableJson, match="nested deeper"):
        dump_json(nested(MAX_DEPTH + 1), depth=MAX_DEPTH)
    body_ok = prepare(with_literal(json.dumps(nested(MAX_DEPTH - 2))))
    assert len(body_ok.events) == 1
    body_deep = prepare(with_literal(json.dumps(nested(MAX_DEPTH - 1))))
    assert [q.error for q in body_deep.quarantined] == [
        f"JSON nested deeper than {MAX_DEPTH} levels"
    ]


def test_orjson_depth_limit_is_what_the_depth_check_relies_on() -> None:
    orjson.dumps(nested(253))  # 253 lists around an integer: 253 levels
    with pytest.raises(orjson.JSONEncodeError, match="Recursion limit"):
        orjson.dumps(nested(255))


def test_every_jsonb_column_is_serialised_at_intake() -> None:
    jsonb = {c.name for c in AuditEvent.__table__.columns if isinstance(c.type, JSONB)}
    assert set(JSON_COLUMN_DEPTHS) == jsonb
    assert jsonb <= set(EVENT_COLUMNS)


def test_items_of_an_event_list_are_dumped_only_when_quarantined() -> None:
    good, bad = audit_event(), audit_event(stage="Sideways")
    items = split_body(json.dumps(event_list([good, bad])).encode(), max_items=10)
    assert [item.raw for item in items] == [None, None]
    batch = prepare_batch(items, cluster="c", source="webhook", redactor=REDACTOR)
    (quarantined,) = batch.quarantined
    assert json.loads(quarantined.raw) == bad


@pytest.mark.parametrize(
    "overrides",
    [{"stage": "Sideways"}, {"kind": "Pod"}, {"userAgent": "kubectl\u0000"}],
    ids=["invalid-after-redaction", "invalid-before-redaction", "unstorable"],
)
def test_quarantined_event_list_item_is_redacted(overrides: dict[str, Any]) -> None:
    event = secret_event({"password": SECRET}, **overrides)
    batch = prepare(json.dumps(event_list([event])).encode())
    (quarantined,) = batch.quarantined
    assert SECRET not in quarantined.raw.decode()
    assert quarantined.is_redacted
    assert json.loads(quarantined.raw)["requestObject"]["data"]["password"].startswith(
        "[redacted:hmac-sha256:"
    )


@pytest.mark.parametrize(
    "kind_literal",
    ['"Secret"', '"\\u0053ecret"', '"TokenRequest"'],
    ids=["plain", "escaped-in-the-input", "token-request"],
)
@pytest.mark.parametrize("extra", [0, 2**70], ids=["small-int", "int-beyond-64-bits"])
def test_objects_redacted_by_kind_are_found_by_the_quick_scan_too(
    kind_literal: str, extra: int
) -> None:
    # A Secret inside a generic List of a configmaps request: found only by kind. The quick
    # check on the orjson text must not miss it, whatever the input's escapes; a body orjson
    # refuses (an integer beyond 64 bits) is walked instead.
    inner = {"kind": "@@", "data": {"p": SECRET}, "status": {"token": SECRET}, "n": extra}
    event = audit_event(
        objectRef={"resource": "configmaps", "namespace": "a", "apiVersion": "v1"},
        responseObject={"kind": "List", "items": [{"kind": "ConfigMap"}, inner]},
    )
    body = json.dumps(event_list([event])).replace('"@@"', kind_literal).encode()
    (row,) = prepare(body).events
    assert row["is_redacted"]
    stored = json.loads(row["response_object"].json_text)["items"][1]
    redacted = stored["status"]["token"] if "Token" in kind_literal else stored["data"]["p"]
    assert redacted.startswith("[redacted:hmac-sha256:")


@pytest.mark.parametrize("shape", ["event-list", "ndjson"])
def test_quarantined_aks_envelope_with_string_log_is_redacted(shape: str) -> None:
    # The event inside AKS's properties.log string fails normalisation: the quarantined copy
    # must not keep the secret in that string (it did, before and after parse-once).
    event = secret_event({"password": SECRET}, stage="Sideways")
    envelope = {"category": "kube-audit", "properties": {"log": json.dumps(event)}}
    body = json.dumps(event_list([envelope]) if shape == "event-list" else envelope)
    (quarantined,) = prepare(body.encode()).quarantined
    assert quarantined.error.startswith("stage: 'Sideways'")
    assert SECRET not in quarantined.raw.decode()
    assert quarantined.is_redacted
    kept = json.loads(json.loads(quarantined.raw)["properties"]["log"])
    assert kept["requestObject"]["data"]["password"].startswith("[redacted:hmac-sha256:")
    assert kept["stage"] == "Sideways"
