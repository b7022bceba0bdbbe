"""Secret redaction: values become keyed-hash markers, keys and shape stay, nothing leaks."""

from __future__ import annotations

import json
from typing import Any

from app.audit.redact import LAST_APPLIED, Redactor, is_marker
from tests.builders import audit_event, secret_event

SECRET = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"  # base64 of a password
REDACTOR = Redactor(b"r" * 32)


def redacted(event: dict[str, Any], redactor: Redactor = REDACTOR) -> dict[str, Any]:
    assert redactor.redact_event(event)
    assert SECRET not in json.dumps(event)
    return event


def test_secret_data_values_become_markers_and_keys_stay() -> None:
    event = redacted(secret_event({"password": SECRET, "user": "YWRtaW4="}))
    data = event["responseObject"]["data"]
    assert set(data) == {"password", "user"}
    assert all(is_marker(v) for v in data.values())
    assert event["requestObject"]["data"]["password"] == data["password"]


def test_equal_values_give_equal_markers_and_different_values_differ() -> None:
    first = redacted(secret_event({"password": SECRET}))
    second = redacted(secret_event({"password": SECRET}))
    third = redacted(secret_event({"password": "b3RoZXI="}))
    marker = first["requestObject"]["data"]["password"]
    assert marker == second["requestObject"]["data"]["password"]
    assert marker != third["requestObject"]["data"]["password"]


def test_marker_depends_on_the_key() -> None:
    other = Redactor(b"another-key-of-32-bytes-length!!")
    assert REDACTOR.marker(SECRET) != other.marker(SECRET)


def test_string_data_and_last_applied_annotation_on_secrets() -> None:
    event = secret_event({})
    body = event["requestObject"]
    body["stringData"] = {"token": SECRET}
    body["metadata"]["annotations"] = {
        LAST_APPLIED: json.dumps({"data": {"p": SECRET}}),
        "team": "payments",
    }
    redacted(event)
    assert is_marker(body["stringData"]["token"])
    assert is_marker(body["metadata"]["annotations"][LAST_APPLIED])
    assert body["metadata"]["annotations"]["team"] == "payments"


def test_secret_list_and_secrets_inside_a_generic_list() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "a"}, "data": {"k": SECRET}}
    event = audit_event(
        verb="list",
        objectRef={"resource": "secrets", "namespace": "ns", "apiVersion": "v1"},
        responseObject={
            "kind": "SecretList",
            "items": [{"metadata": {"name": "a"}, "data": {"k": SECRET}}],
        },
        requestObject={"kind": "List", "items": [secret]},
    )
    redacted(event)
    assert is_marker(event["responseObject"]["items"][0]["data"]["k"])
    assert is_marker(event["requestObject"]["items"][0]["data"]["k"])


def test_merge_patch_and_json_patch_on_secrets() -> None:
    ref = {"resource": "secrets", "namespace": "ns", "name": "s", "apiVersion": "v1"}
    merge = audit_event(verb="patch", objectRef=ref, requestObject={"data": {"password": SECRET}})
    redacted(merge)
    assert set(merge["requestObject"]["data"]) == {"password"}
    ops = [
        {"op": "replace", "path": "/data/password", "value": SECRET},
        {"op": "add", "path": "/data", "value": {"x": SECRET}},
        {
            "op": "add",
            "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            "value": SECRET,
        },
        {"op": "remove", "path": "/data/old"},
        {"op": "replace", "path": "/metadata/labels/app", "value": "web"},
    ]
    patch = audit_event(verb="patch", objectRef=ref, requestObject=ops)
    redacted(patch)
    assert patch["requestObject"][3] == {"op": "remove", "path": "/data/old"}
    assert patch["requestObject"][4]["value"] == "web"
    assert is_marker(patch["requestObject"][0]["value"])
    assert is_marker(patch["requestObject"][1]["value"]["x"])


def test_token_review_and_token_request() -> None:
    review = audit_event(
        objectRef={"resource": "tokenreviews", "apiGroup": "authentication.k8s.io"},
        requestObject={"kind": "TokenReview", "spec": {"token": SECRET}},
        responseObject={
            "kind": "TokenReview",
            "spec": {"token": SECRET},
            "status": {"authenticated": True},
        },
    )
    redacted(review)
    assert review["responseObject"]["status"] == {"authenticated": True}
    request = audit_event(
        objectRef={
            "resource": "serviceaccounts",
            "subresource": "token",
            "namespace": "ns",
            "name": "sa",
        },
        responseObject={
            "kind": "TokenRequest",
            "status": {"token": SECRET, "expirationTimestamp": "x"},
        },
    )
    redacted(request)
    assert request["responseObject"]["status"]["expirationTimestamp"] == "x"


def test_configured_extra_paths_with_wildcards() -> None:
    redactor = Redactor(b"r" * 32, ["requestObject.spec.*.password", "annotations.token"])
    event = audit_event(
        requestObject={"spec": {"db": {"password": SECRET, "host": "db"}, "cache": {}}},
        annotations={"token": SECRET, "other": "kept"},
    )
    redacted(event, redactor)
    assert event["requestObject"]["spec"]["db"]["host"] == "db"
    assert event["annotations"]["other"] == "kept"


def test_non_secret_bodies_are_untouched() -> None:
    event = audit_event(requestObject={"kind": "ConfigMap", "data": {"k": "v"}})
    assert not REDACTOR.redact_event(event)
    assert event["requestObject"]["data"] == {"k": "v"}


def test_hostile_shapes_do_not_crash() -> None:
    for body in (
        [1, "x", None],
        "text",
        5,
        {"kind": "Secret", "data": "notadict"},
        {"kind": "Secret", "metadata": "x"},
        [{"op": "add", "path": 5, "value": SECRET}],
    ):
        event = audit_event(objectRef={"resource": "secrets"}, requestObject=body)
        REDACTOR.redact_event(event)
    deep: Any = {"kind": "Secret", "data": {"a": SECRET}}
    for _ in range(150):
        deep = {"kind": "List", "items": [deep]}
    event = audit_event()
    event["requestObject"] = deep
    assert REDACTOR.redact_event(event)
