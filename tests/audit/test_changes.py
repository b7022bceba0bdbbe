"""describe_change: known, computed and unknown outcomes; field summaries; secrets by hash."""

from __future__ import annotations

from typing import Any

import pytest

from app.audit.changes import FieldChangeKind, Outcome, describe_change, field_changes
from app.audit.models import AuditEvent
from app.audit.normalize import normalize_event
from app.audit.patches import PatchKind
from app.audit.redact import Redactor
from tests.builders import audit_event, secret_event

REDACTOR = Redactor(b"0123456789abcdef")
CM_REF = {"resource": "configmaps", "namespace": "payments", "name": "app", "apiVersion": "v1"}
CONFIG_MAP: dict[str, Any] = {
    "kind": "ConfigMap",
    "apiVersion": "v1",
    "metadata": {"name": "app", "namespace": "payments", "resourceVersion": "1"},
    "data": {"LOG_LEVEL": "info", "MODE": "live"},
}


def stored(event: dict[str, Any]) -> AuditEvent:
    """The event as the store keeps it (redacted, normalised)."""
    return AuditEvent(**normalize_event(event, cluster="t", source="webhook", redactor=REDACTOR))


def cm_event(**overrides: Any) -> AuditEvent:
    overrides.setdefault("responseStatus", {"metadata": {}, "code": 200})
    return stored(audit_event(objectRef=CM_REF, **overrides))


def with_data(**data: Any) -> dict[str, Any]:
    return {
        **CONFIG_MAP,
        "data": data,
        "metadata": {**CONFIG_MAP["metadata"], "resourceVersion": "2"},
    }


def test_secret_rotation_is_a_change_and_says_redacted() -> None:
    before = stored(secret_event({"password": "b2xk", "user": "YWRtaW4="}))
    after = stored(
        secret_event(
            {"password": "bmV3", "user": "YWRtaW4="},
            verb="update",
            responseStatus={"metadata": {}, "code": 200},
        )
    )
    same = stored(
        secret_event(
            {"password": "b2xk", "user": "YWRtaW4="},
            verb="update",
            responseStatus={"metadata": {}, "code": 200},
        )
    )

    change = describe_change(after, before.response_object)
    unchanged = describe_change(same, before.response_object)

    assert change.outcome is Outcome.CHANGED
    assert [f.path for f in change.fields] == ["data.password"]
    assert change.fields[0].is_redacted
    assert change.summary == "data.password: changed (redacted)"
    assert "hmac" not in change.summary
    assert unchanged.outcome is Outcome.UNCHANGED
    assert unchanged.fields == ()


def test_field_summary_reads_like_a_changelog() -> None:
    before = {
        "metadata": {"name": "a"},
        "data": {"LOG_LEVEL": "info", "GONE": "x"},
        "spec": {"replicas": 2},
    }
    after = {
        "metadata": {"name": "a"},
        "data": {"LOG_LEVEL": "debug", "NEW": "y z"},
        "spec": {"replicas": 3},
    }

    fields = field_changes(before, after)

    assert [f.text for f in fields] == [
        "data.GONE: x → (absent)",
        "data.LOG_LEVEL: info → debug",
        "data.NEW: (absent) → y z",
        "spec.replicas: 2 → 3",
    ]
    assert [f.kind for f in fields] == [
        FieldChangeKind.REMOVED,
        FieldChangeKind.CHANGED,
        FieldChangeKind.ADDED,
        FieldChangeKind.CHANGED,
    ]


def test_field_paths_quote_odd_keys_and_values_stay_on_one_line() -> None:
    fields = field_changes(
        {"metadata": {"labels": {"app.kubernetes.io/name": "a"}}, "x": ["a", "b"]},
        {"metadata": {"labels": {"app.kubernetes.io/name": "b\nc"}}, "x": ["a", "c"]},
    )

    assert [f.text for f in fields] == [
        'metadata.labels["app.kubernetes.io/name"]: a → "b\\nc"',
        "x[1]: b → c",
    ]


def test_noise_fields_are_not_changes() -> None:
    before = {**CONFIG_MAP}
    after = {**CONFIG_MAP, "metadata": {**CONFIG_MAP["metadata"], "resourceVersion": "9"}}

    assert field_changes(before, after) == ()


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"verb": "update", "level": "Metadata"}, "Metadata level"),
        ({"verb": "update", "level": "Request", "requestObject": CONFIG_MAP}, "Request level"),
        ({"verb": "update", "requestObject": CONFIG_MAP}, "response body is missing"),
        ({"verb": "update", "responseObject": [CONFIG_MAP]}, "not a version of the object"),
        ({"verb": "patch", "stage": "RequestReceived", "responseStatus": None}, "RequestReceived"),
        ({"verb": "create", "level": "Metadata"}, "Metadata level"),
        ({"verb": "delete", "responseStatus": None, "stage": "RequestReceived"}, "RequestReceived"),
    ],
)
def test_unknown_results_are_never_no_change(overrides: dict[str, Any], words: str) -> None:
    event = cm_event(**overrides)

    change = describe_change(event, CONFIG_MAP)

    assert change.outcome is Outcome.NOT_RECORDED
    assert change.outcome.label == "result not recorded"
    assert words in change.note
    assert "no change" not in change.summary.lower()
    assert change.after is None


def test_json_patch_without_response_is_computed_from_the_previous_version() -> None:
    event = cm_event(
        verb="patch", requestObject=[{"op": "replace", "path": "/data/LOG_LEVEL", "value": "debug"}]
    )

    change = describe_change(event, CONFIG_MAP)

    assert change.outcome is Outcome.CHANGED
    assert change.is_computed
    assert change.patch_kind is PatchKind.JSON_PATCH
    assert change.summary == "data.LOG_LEVEL: info → debug"
    assert change.note.startswith("Computed, not recorded")
    assert change.after["data"] == {"LOG_LEVEL": "debug", "MODE": "live"}


def test_merge_patch_without_response_is_computed() -> None:
    event = cm_event(verb="patch", requestObject={"data": {"MODE": None, "LOG_LEVEL": "warn"}})

    change = describe_change(event, CONFIG_MAP)

    assert change.is_computed
    assert change.patch_kind is PatchKind.MERGE
    assert [f.text for f in change.fields] == [
        "data.LOG_LEVEL: info → warn",
        "data.MODE: live → (absent)",
    ]


@pytest.mark.parametrize(
    ("patch", "previous", "words"),
    [
        (
            {"spec": {"containers": [{"$patch": "delete", "name": "x"}]}},
            CONFIG_MAP,
            "strategic-merge",
        ),
        ({"metadata": {"finalizers": ["x"]}}, CONFIG_MAP, "lists"),
        (
            [{"op": "replace", "path": "/data/LOG_LEVEL", "value": "debug"}],
            None,
            "no earlier version",
        ),
        ([{"op": "remove", "path": "/data/NOPE"}], CONFIG_MAP, "does not apply"),
    ],
)
def test_patches_without_a_computable_result_are_not_recorded(
    patch: object, previous: object, words: str
) -> None:
    change = describe_change(cm_event(verb="patch", requestObject=patch), previous)

    assert change.outcome is Outcome.NOT_RECORDED
    assert not change.is_computed
    assert words in change.note


def test_recorded_outcomes() -> None:
    created = cm_event(verb="create", requestObject=CONFIG_MAP, responseObject=CONFIG_MAP)
    updated = cm_event(verb="update", responseObject=with_data(LOG_LEVEL="debug", MODE="live"))
    no_op = cm_event(verb="update", responseObject=with_data(LOG_LEVEL="info", MODE="live"))
    deleted = cm_event(verb="delete", responseObject={"kind": "Status", "status": "Success"})
    failed = cm_event(verb="update", responseStatus={"metadata": {}, "code": 409})
    read = cm_event(verb="get", level="Metadata")

    assert describe_change(created, None).outcome is Outcome.CREATED
    assert describe_change(updated, CONFIG_MAP).summary == "data.LOG_LEVEL: info → debug"
    assert describe_change(no_op, CONFIG_MAP).outcome is Outcome.UNCHANGED
    assert describe_change(deleted, CONFIG_MAP).outcome is Outcome.DELETED
    assert describe_change(failed, CONFIG_MAP).outcome is Outcome.FAILED
    assert describe_change(read, CONFIG_MAP).outcome is Outcome.READ
    missing = describe_change(updated, None)
    assert missing.outcome is Outcome.NO_PREVIOUS
    assert not missing.outcome.is_known


def test_summary_is_capped() -> None:
    before = {"data": {f"K{i}": "a" for i in range(8)}}
    after = {"data": {f"K{i}": "b" for i in range(8)}}
    event = cm_event(verb="update", responseObject={**CONFIG_MAP, **after})

    change = describe_change(event, {**CONFIG_MAP, **before})

    assert change.summary.endswith("; and 3 more")
    assert change.summary.count("→") == 5


def test_a_patch_that_could_never_be_computed_says_why_even_after_a_gap() -> None:
    smp = cm_event(verb="patch", requestObject={"spec": {"$retainKeys": ["type"]}})
    merge = cm_event(verb="patch", requestObject={"data": {"A": "1"}})

    assert "strategic-merge" in describe_change(smp, CONFIG_MAP, unrecorded=1).note
    blocked = describe_change(merge, CONFIG_MAP, unrecorded=2)
    assert blocked.outcome is Outcome.NOT_RECORDED
    assert "2 changes have no recorded result" in blocked.note


def test_hostile_keys_and_values_stay_short_and_on_one_line() -> None:
    key = "k\u2028" + "x" * 5000
    fields = field_changes({"data": {key: "a"}}, {"data": {key: "b\x00" + "y" * 5000}})

    (field,) = fields
    assert len(field.text) < 200
    assert "\n" not in field.text
    assert "\u2028" not in field.text


def test_strings_that_look_like_other_values_are_quoted() -> None:
    fields = field_changes(
        {"a": "3", "b": True, "c": "x", "d": "[1]"}, {"a": 3, "b": "true", "c": None, "d": [1]}
    )

    assert [f.text for f in fields] == [
        'a: "3" → 3',
        'b: true → "true"',
        "c: x → null",
        'd: "[1]" → [1]',
    ]


def test_server_errors_and_equal_versions_after_a_gap_are_not_called_no_change() -> None:
    # A 5xx write may or may not have been applied; a 4xx was refused.
    timed_out = cm_event(verb="update", responseStatus={"metadata": {}, "code": 504})
    assert describe_change(timed_out, CONFIG_MAP).outcome is Outcome.NOT_RECORDED
    refused_read = cm_event(verb="get", responseStatus={"metadata": {}, "code": 500})
    assert describe_change(refused_read, CONFIG_MAP).outcome is Outcome.FAILED
    # Equal to the last recorded version, but a change in between may have been undone by it.
    same = cm_event(verb="update", responseObject=with_data(LOG_LEVEL="info", MODE="live"))
    assert describe_change(same, CONFIG_MAP).outcome is Outcome.UNCHANGED
    after_gap = describe_change(same, CONFIG_MAP, unrecorded=1)
    assert after_gap.outcome is Outcome.NO_PREVIOUS
    assert not after_gap.outcome.is_known
    assert after_gap.gap_note is not None
    assert "no change" not in after_gap.outcome.label
