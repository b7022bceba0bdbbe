"""Patch kinds read from the body's shape, and the objects computed from JSON and merge patches."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from app.audit.patches import PatchKind, apply_patch, classify_patch, merge_patch

CONFIG_MAP: dict[str, Any] = {
    "kind": "ConfigMap",
    "apiVersion": "v1",
    "metadata": {"name": "app", "namespace": "payments", "labels": {"team": "a"}},
    "data": {"LOG_LEVEL": "info", "MODE": "live"},
}
DEPLOYMENT: dict[str, Any] = {
    "kind": "Deployment",
    "apiVersion": "apps/v1",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}},
    },
}


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ([{"op": "replace", "path": "/spec/replicas", "value": 3}], PatchKind.JSON_PATCH),
        (
            [{"op": "test", "path": "/a", "value": 1}, {"op": "remove", "path": "/a"}],
            PatchKind.JSON_PATCH,
        ),
        ([], PatchKind.INVALID),
        ([{"path": "/a"}], PatchKind.INVALID),
        ([{"op": 3, "path": "/a"}], PatchKind.INVALID),
        ([1, 2], PatchKind.INVALID),
        ({"data": {"LOG_LEVEL": "debug", "OLD": None}}, PatchKind.MERGE),
        ({"spec": {"replicas": 3}}, PatchKind.MERGE),
        ({}, PatchKind.MERGE),
        (
            {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}},
            PatchKind.AMBIGUOUS,
        ),
        ({"metadata": {"finalizers": ["a"]}}, PatchKind.AMBIGUOUS),
        (
            {"spec": {"containers": [{"$patch": "delete", "name": "side"}]}},
            PatchKind.STRATEGIC_MERGE,
        ),
        (
            {"spec": {"$setElementOrder/containers": [{"name": "web"}], "containers": []}},
            PatchKind.STRATEGIC_MERGE,
        ),
        ({"spec": {"$retainKeys": ["type"], "type": "Recreate"}}, PatchKind.STRATEGIC_MERGE),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, PatchKind.STRATEGIC_MERGE),
        ({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}, PatchKind.APPLY),
        ("a string", PatchKind.INVALID),
        (None, PatchKind.INVALID),
        (42, PatchKind.INVALID),
    ],
)
def test_patch_kind_is_read_from_the_shape(body: object, kind: PatchKind) -> None:
    assert classify_patch(body) is kind


def test_json_patch_applies_to_the_previous_version_without_touching_it() -> None:
    before = copy.deepcopy(DEPLOYMENT)
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "side"}},
        {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
        {"op": "copy", "from": "/metadata/labels/a~1b", "path": "/metadata/annotations"},
    ]

    result = apply_patch(before, ops)

    assert result.is_computed
    assert result.kind is PatchKind.JSON_PATCH
    assert result.result is not None
    assert result.result["spec"]["replicas"] == 3
    assert result.result["spec"]["template"]["spec"]["containers"][1] == {"name": "side"}
    assert result.result["metadata"]["annotations"] == "c"
    assert before == DEPLOYMENT


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ([{"op": "remove", "path": "/spec/missing"}], "does not apply"),
        ([{"op": "test", "path": "/spec/replicas", "value": 5}], "does not apply"),
        (
            [{"op": "replace", "path": "/spec/template/spec/containers/7", "value": 1}],
            "does not apply",
        ),
        ([{"op": "add", "path": "no-slash", "value": 1}], "does not apply"),
        ([{"op": "frobnicate", "path": "/a"}], "does not apply"),
        ([{"op": "replace", "path": "", "value": [1]}], "non-object"),
    ],
)
def test_json_patch_that_does_not_apply_says_why(ops: list[Any], words: str) -> None:
    result = apply_patch(DEPLOYMENT, ops)

    assert result.result is None
    assert words in result.reason


def test_merge_patch_follows_rfc_7386() -> None:
    # The RFC's own example (section 3).
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}}
    # Appendix A cases: lists replace, non-objects replace, null removes.
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": "foo"}, "bar") == "bar"
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}


def test_merge_patch_result_is_computed() -> None:
    result = apply_patch(CONFIG_MAP, {"data": {"LOG_LEVEL": "debug", "MODE": None}})

    assert result.kind is PatchKind.MERGE
    assert result.result is not None
    assert result.result["data"] == {"LOG_LEVEL": "debug"}
    assert result.result["metadata"] == CONFIG_MAP["metadata"]
    assert CONFIG_MAP["data"] == {"LOG_LEVEL": "info", "MODE": "live"}


@pytest.mark.parametrize(
    ("patch", "kind", "words"),
    [
        (
            {"spec": {"containers": [{"$patch": "delete", "name": "x"}]}},
            PatchKind.STRATEGIC_MERGE,
            "strategic-merge",
        ),
        ({"spec": {"template": {"spec": {"containers": []}}}}, PatchKind.AMBIGUOUS, "lists"),
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, PatchKind.APPLY, "server-side apply"),
        ("text", PatchKind.INVALID, "not a patch"),
    ],
)
def test_patches_whose_result_cannot_be_known_are_not_computed(
    patch: object, kind: PatchKind, words: str
) -> None:
    result = apply_patch(DEPLOYMENT, patch)

    assert result.kind is kind
    assert result.result is None
    assert words in result.reason


def test_no_previous_version_means_nothing_computed() -> None:
    result = apply_patch(None, [{"op": "add", "path": "/a", "value": 1}])

    assert result.result is None
    assert "no earlier version" in result.reason


def test_deep_documents_are_refused_not_crashed() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    assert classify_patch(deep) is PatchKind.INVALID
    assert apply_patch(deep, [{"op": "add", "path": "/b", "value": 1}]).result is None
    assert apply_patch(deep, {"b": 1}).result is None
