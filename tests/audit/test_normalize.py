"""Normalisation: every column from v1 and v1beta1 events, time handling, validation messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.audit.normalize import InvalidEvent, normalize_event, parse_time, reconstruct_event
from app.audit.redact import Redactor
from tests.builders import audit_event
from tests.conftest import fixture_paths, requires_fixtures

REDACTOR = Redactor(b"k" * 32)


def normalize(event: Any) -> dict[str, Any]:
    return normalize_event(event, cluster="c1", source="webhook", redactor=REDACTOR)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
        ("2026-11-20T10:00:00.123456789Z", datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-20T10:00:00.5Z", datetime(2026, 11, 20, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T12:30:00+02:30", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
        ("2026-11-20t05:00:00.000001-05:00", datetime(2026, 11, 20, 10, 0, 0, 1, tzinfo=UTC)),
        (
            "2026-11-20T10:00:00.999999999+0000",
            datetime(2026, 11, 20, 10, 0, 0, 999999, tzinfo=UTC),
        ),
    ],
)
def test_times_become_utc_microseconds(text: str, expected: datetime) -> None:
    parsed = parse_time(text, "stageTimestamp")
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-20",
        "2026-13-01T00:00:00Z",
        "2026-11-20T10:00:60Z",
        "yesterday",
        "2026-11-20T10:00Z",
        "2026-11-20T10:00:00+25:00",
        "2026-11-20T10:00:00",
    ],
)
def test_bad_times_are_rejected_with_the_field_name(text: str) -> None:
    with pytest.raises(InvalidEvent, match="stageTimestamp"):
        normalize(audit_event(stageTimestamp=text))


def test_v1_event_fills_every_queryable_column() -> None:
    event = audit_event(
        impersonatedUser={"username": "bob", "groups": ["devs"]},
        user={"username": "alice", "uid": "u-1", "groups": ["g1", "g2"]},
        objectRef={
            "resource": "pods",
            "subresource": "exec",
            "namespace": "ns",
            "name": "p",
            "apiVersion": "v1",
        },
        responseStatus={"code": 403, "status": "Failure", "reason": "Forbidden", "message": "no"},
        annotations={
            "authorization.k8s.io/decision": "forbid",
            "authorization.k8s.io/reason": "RBAC: denied",
        },
        stageTimestamp="2026-11-20T10:00:01.000000002+01:00",
    )
    row = normalize(event)
    assert row["resource"] == "pods"
    assert row["subresource"] == "exec"
    assert (row["namespace"], row["name"]) == ("ns", "p")
    assert (row["username"], row["user_uid"], row["user_groups"]) == ("alice", "u-1", ["g1", "g2"])
    assert (row["impersonated_user"], row["impersonated_groups"]) == ("bob", ["devs"])
    assert (row["response_code"], row["response_status"], row["response_reason"]) == (
        403,
        "Failure",
        "Forbidden",
    )
    assert row["response_message"] == "no"
    assert (row["authz_decision"], row["authz_reason"]) == ("forbid", "RBAC: denied")
    assert row["stage_at"] == datetime(2026, 11, 20, 9, 0, 1, tzinfo=UTC)
    assert row["requested_at"] == datetime(2026, 11, 20, 10, 0, 0, 1, tzinfo=UTC)
    assert row["source_ips"] == ["10.0.0.7"]
    assert row["user_agent"] == "kubectl/v1.31.0"
    assert (row["cluster"], row["source"]) == ("c1", "webhook")


def test_old_v1beta1_uses_timestamp_when_stage_times_are_absent() -> None:
    event = audit_event(apiVersion="audit.k8s.io/v1beta1", timestamp="2017-09-11T19:55:05Z")
    del event["stageTimestamp"], event["requestReceivedTimestamp"]
    row = normalize(event)
    assert row["stage_at"] == row["requested_at"] == datetime(2017, 9, 11, 19, 55, 5, tzinfo=UTC)


def test_networkpolicy_is_one_resource_in_both_groups() -> None:
    new = normalize(audit_event())
    legacy = normalize(
        audit_event(
            objectRef={
                "resource": "networkpolicies",
                "namespace": "payments",
                "name": "allow-web",
                "apiGroup": "extensions",
                "apiVersion": "v1beta1",
            }
        )
    )
    assert new["resource"] == legacy["resource"] == "networkpolicies"
    assert (new["api_group"], legacy["api_group"]) == ("networking.k8s.io", "extensions")


def test_non_resource_request_is_kept_without_object() -> None:
    event = audit_event(verb="get", requestURI="/healthz")
    del event["objectRef"]
    row = normalize(event)
    assert row["resource"] is None
    assert row["name"] is None
    assert row["request_uri"] == "/healthz"


def test_event_without_api_version_or_kind_is_accepted() -> None:
    event = audit_event()
    del event["apiVersion"], event["kind"]
    assert normalize(event)["audit_id"] == event["auditID"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"apiVersion": "audit.k8s.io/v1alpha1"}, "unsupported apiVersion"),
        ({"kind": "Pod"}, "kind is 'Pod'"),
        ({"auditID": None}, "auditID: missing"),
        ({"auditID": 12}, "auditID: expected a non-empty string"),
        ({"stage": "Done"}, "stage: 'Done' is not one of"),
        ({"verb": ""}, "verb: expected a non-empty string"),
        ({"level": "Everything"}, "level:"),
        ({"user": "alice"}, "user: expected an object"),
        ({"sourceIPs": "10.0.0.1"}, "sourceIPs: expected a list of strings"),
        ({"responseStatus": {"code": "200"}}, "responseStatus.code: expected an integer"),
        ({"responseStatus": {"code": 2**40}}, "outside 0..999"),
        ({"objectRef": {"name": "x" * 300}}, "objectRef.name: longer than 253"),
        ({"annotations": {"a": 1}}, "annotations.a: expected a string"),
        ({"stageTimestamp": None, "timestamp": None}, "stageTimestamp: missing"),
    ],
)
def test_invalid_events_say_what_is_wrong(change: dict[str, Any], message: str) -> None:
    event = audit_event()
    for key, value in change.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    with pytest.raises(InvalidEvent, match=message):
        normalize(event)


@pytest.mark.parametrize("value", [[], "Event", 7, None])
def test_non_objects_are_not_events(value: Any) -> None:
    with pytest.raises(InvalidEvent, match="expected an audit Event object"):
        normalize(value)


@requires_fixtures
def test_every_fixture_event_reconstructs_json_equal() -> None:
    checked = 0
    for path in fixture_paths():
        for line in path.read_text().splitlines():
            original = json.loads(line)
            event = json.loads(line)
            try:
                row = normalize(event)
            except InvalidEvent:
                continue
            rebuilt = reconstruct_event(row["raw"], row["request_object"], row["response_object"])
            if row["is_redacted"]:
                assert rebuilt.keys() == original.keys()
            else:
                assert rebuilt == original, f"{path.name}: {original.get('auditID')}"
            checked += 1
    assert checked > 900


def test_bodies_are_split_out_of_raw() -> None:
    row = normalize(audit_event(requestObject={"a": 1}, responseObject={"b": 2}))
    assert row["request_object"] == {"a": 1}
    assert row["response_object"] == {"b": 2}
    assert "requestObject" not in row["raw"]
    assert "responseObject" not in row["raw"]


def test_offset_times_order_correctly() -> None:
    east = normalize(audit_event(stageTimestamp="2026-11-20T11:00:00+02:00"))
    utc = normalize(audit_event(stageTimestamp="2026-11-20T09:30:00Z"))
    assert east["stage_at"] < utc["stage_at"]
    assert east["stage_at"].utcoffset() == timedelta(0)
