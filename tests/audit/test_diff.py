"""Unit tests for app.audit.diff on real audit bodies from the shared fixtures; no database."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.audit.diff import (
    REDACTED,
    REDACTED_CHANGED,
    REDACTED_UNCHANGED,
    BodyKind,
    Row,
    RowKind,
    Segment,
    SideBySideDiff,
    classify_body,
    mask_redactions,
    render_json_patch,
    render_version,
    render_yaml_lines,
    side_by_side,
    split_changed_line,
    strip_noise,
)
from app.audit.redact import LAST_APPLIED, Redactor

REAL_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "real"
OPENSHIFT = "openshift-clo__apiaudit_audit_in.jsonl"
FALCO = "falco__k8s_audit_trace_files.jsonl"

MARKER_A = "[redacted:hmac-sha256:" + "a" * 32 + "]"
MARKER_B = "[redacted:hmac-sha256:" + "0123456789abcdef" * 2 + "]"
MARKER_C = "[redacted:hmac-sha256:" + "c0ffee00" * 4 + "]"

Event = dict[str, Any]


@pytest.fixture(scope="module")
def load_events() -> Callable[[str], list[Event]]:
    if not REAL_DIR.is_dir():
        pytest.skip(f"real audit fixtures not found at {REAL_DIR} (they live in /work/shared)")

    def load(name: str) -> list[Event]:
        with (REAL_DIR / name).open(encoding="utf-8") as lines:
            return [json.loads(line) for line in lines if line.strip()]

    return load


def find_event(events: list[Event], *needs: str, **where: object) -> Event:
    for event in events:
        if not all(key in event for key in needs):
            continue
        ref = event.get("objectRef") or {}
        facts = {
            "verb": event.get("verb"),
            "resource": ref.get("resource"),
            "code": (event.get("responseStatus") or {}).get("code"),
        }
        if all(facts[key] == value for key, value in where.items()):
            return event
    raise AssertionError(f"no real event matches {where}")


def expand(rows: tuple[Row, ...]) -> Iterator[Row]:
    for row in rows:
        if row.kind is RowKind.FOLD:
            assert row.left is None
            assert row.right is None
            yield from row.hidden_rows
        else:
            yield row


def left_column(diff: SideBySideDiff) -> list[str]:
    return [row.left.text for row in expand(diff.rows) if row.left is not None]


def right_column(diff: SideBySideDiff) -> list[str]:
    return [row.right.text for row in expand(diff.rows) if row.right is not None]


def all_rendered_text(diff: SideBySideDiff) -> str:
    texts = [*diff.left.lines, *diff.right.lines]
    for row in expand(diff.rows):
        for cell in (row.left, row.right):
            if cell is not None:
                texts.extend(segment.text for segment in cell.segments)
    return "\n".join(texts)


def assert_well_formed(diff: SideBySideDiff) -> None:
    """Structural invariants every diff must satisfy, whatever the input."""
    rows = list(expand(diff.rows))
    assert left_column(diff) == list(diff.left.lines)
    assert right_column(diff) == list(diff.right.lines)
    assert [row.left.number for row in rows if row.left] == list(range(1, len(diff.left.lines) + 1))
    assert [row.right.number for row in rows if row.right] == list(
        range(1, len(diff.right.lines) + 1)
    )
    for row in rows:
        if row.kind is RowKind.EQUAL:
            assert row.left is not None
            assert row.right is not None
            assert row.left.text == row.right.text
        elif row.kind is RowKind.CHANGED:
            assert row.left is not None
            assert row.right is not None
            assert row.left.text != row.right.text
            changed = [s for s in (*row.left.segments, *row.right.segments) if s.is_changed]
            assert changed, "a changed row must mark what changed"
        elif row.kind is RowKind.ADDED:
            assert row.left is None
            assert row.right is not None
        elif row.kind is RowKind.REMOVED:
            assert row.left is not None
            assert row.right is None
        else:
            raise AssertionError(f"fold rows must not nest: {row}")
    assert diff.added == sum(row.kind is RowKind.ADDED for row in rows)
    assert diff.removed == sum(row.kind is RowKind.REMOVED for row in rows)
    assert diff.changed == sum(row.kind is RowKind.CHANGED for row in rows)
    for row in diff.rows:
        if row.kind is RowKind.FOLD:
            assert row.hidden_count == len(row.hidden_rows) > 0
            assert all(hidden.kind is RowKind.EQUAL for hidden in row.hidden_rows)
    for line in (*diff.left.lines, *diff.right.lines):
        assert "\n" not in line


# --- real request/response pairs ---------------------------------------------------------


def test_server_side_apply_patch_shows_server_defaults_as_added(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="patch", resource="deployments")
    assert "force=true" in event["requestURI"]

    diff = side_by_side(event["requestObject"], event["responseObject"])

    assert_well_formed(diff)
    assert diff.left.body_kind is BodyKind.OBJECT
    assert diff.right.body_kind is BodyKind.OBJECT
    added = [row.right.text for row in expand(diff.rows) if row.right and row.kind == "added"]
    assert "    deployment.kubernetes.io/revision: '4'" in added
    assert "  progressDeadlineSeconds: 600" in added
    assert "status:" in added
    # The SSA request is a full object and the server only adds to it.
    assert diff.removed == 0
    assert diff.changed == 0
    assert set(diff.noise_paths) == {
        "metadata.resourceVersion",
        "metadata.generation",
        "metadata.uid",
        "metadata.creationTimestamp",
    }
    assert not any(line.startswith("  resourceVersion:") for line in diff.right.lines)


def test_update_differing_only_in_noise_is_identical_and_fully_folded(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="update", resource="catalogsources")

    hidden = side_by_side(event["requestObject"], event["responseObject"])
    shown = side_by_side(event["requestObject"], event["responseObject"], hide_noise=False)

    assert hidden.is_identical
    assert hidden.is_noise_hidden
    assert [row.kind for row in hidden.rows] == [RowKind.FOLD]
    assert hidden.rows[0].hidden_count == len(hidden.left.lines)
    assert_well_formed(hidden)
    assert not shown.is_identical
    assert not shown.is_noise_hidden
    assert (shown.added, shown.removed, shown.changed) == (0, 0, 1)
    assert_well_formed(shown)
    # Noise paths are reported in both modes so the UI can offer the switch either way.
    assert shown.noise_paths == hidden.noise_paths


def test_changed_line_marks_exactly_the_differing_characters(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="patch", resource="leases")
    assert event["requestObject"]["metadata"]["resourceVersion"] == "8932948"
    assert event["responseObject"]["metadata"]["resourceVersion"] == "8932961"

    diff = side_by_side(event["requestObject"], event["responseObject"], hide_noise=False)

    changed = [row for row in expand(diff.rows) if row.kind is RowKind.CHANGED]
    assert len(changed) == 1
    left, right = changed[0].left, changed[0].right
    assert left is not None
    assert right is not None
    assert left.segments == (
        Segment("  resourceVersion: '89329", False),
        Segment("48", True),
        Segment("'", False),
    )
    assert right.segments == (
        Segment("  resourceVersion: '89329", False),
        Segment("61", True),
        Segment("'", False),
    )
    assert_well_formed(diff)


def test_lease_patch_noise_is_folded_and_counted(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="patch", resource="leases")

    diff = side_by_side(event["requestObject"], event["responseObject"])

    # resourceVersion is on both sides but is one field; uid and creationTimestamp only respond.
    assert diff.noise_count == 3
    assert set(diff.noise_paths) == {
        "metadata.resourceVersion",
        "metadata.uid",
        "metadata.creationTimestamp",
    }
    assert diff.left.noise_paths == ("metadata.resourceVersion",)
    assert diff.is_identical


def test_forbidden_pod_create_has_status_response(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="create", resource="pods", code=403)

    diff = side_by_side(event["requestObject"], event["responseObject"])

    assert classify_body(event["requestObject"]) is BodyKind.OBJECT
    assert diff.right.body_kind is BodyKind.STATUS
    assert "reason: Forbidden" in diff.right.lines
    assert "code: 403" in diff.right.lines
    assert not diff.is_identical
    assert_well_formed(diff)


def test_conflicting_create_and_not_found_delete_classify_as_status(
    load_events: Callable[[str], list[Event]],
) -> None:
    events = load_events(OPENSHIFT)
    conflict = find_event(events, verb="create", resource="serviceaccounts", code=409)
    not_found = find_event(events, verb="delete", resource="prometheusrules", code=404)

    assert classify_body(conflict["responseObject"]) is BodyKind.STATUS
    assert classify_body(not_found["responseObject"]) is BodyKind.STATUS
    # A delete's request body is DeleteOptions: an object, not a patch.
    assert classify_body(not_found["requestObject"]) is BodyKind.OBJECT
    diff = side_by_side(conflict["requestObject"], conflict["responseObject"])
    assert "reason: AlreadyExists" in diff.right.lines
    assert_well_formed(diff)


def test_kubectl_apply_patch_hides_last_applied_annotation(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(FALCO), verb="patch", resource="clusterroles")
    annotation = "kubectl.kubernetes.io/last-applied-configuration"
    assert annotation in event["requestObject"]["metadata"]["annotations"]

    hidden = side_by_side(event["requestObject"], event["responseObject"])
    shown = side_by_side(event["requestObject"], event["responseObject"], hide_noise=False)

    assert f'metadata.annotations["{annotation}"]' in hidden.noise_paths
    assert "last-applied" not in "\n".join(hidden.left.lines + hidden.right.lines)
    # The request's only annotation was the noise one, so no empty "annotations: {}" remains.
    assert "  annotations:" not in hidden.left.lines
    assert "  annotations: {}" not in hidden.left.lines
    assert "    rbac.authorization.kubernetes.io/autoupdate: 'true'" in hidden.right.lines
    # Shown, the JSON annotation (which ends in a newline) is a readable literal block, equal on
    # both sides.
    header = f"    {annotation}: |"
    assert header in shown.left.lines
    body_line = shown.left.lines[shown.left.lines.index(header) + 1]
    assert body_line.startswith('      {"apiVersion":"rbac.authorization.k8s.io/v1"')
    equal_texts = [
        row.left.text for row in expand(shown.rows) if row.kind is RowKind.EQUAL and row.left
    ]
    assert header in equal_texts
    assert body_line in equal_texts
    assert_well_formed(hidden)
    assert_well_formed(shown)


def test_pod_create_response_adds_server_fields_and_hides_self_link(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(
        load_events(FALCO), "requestObject", "responseObject", verb="create", resource="pods"
    )

    diff = side_by_side(event["requestObject"], event["responseObject"])

    assert "metadata.selfLink" in diff.noise_paths
    assert not any("selfLink" in line for line in diff.right.lines)
    added = {row.right.text for row in expand(diff.rows) if row.right and row.kind == "added"}
    assert "  phase: Pending" in added
    assert_well_formed(diff)


def test_list_items_noise_is_stripped_per_item(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="list", resource="pods")
    body = event["responseObject"]
    assert classify_body(body) is BodyKind.LIST
    expected = [
        f"items[{index}].metadata.{key}"
        for index, item in enumerate(body["items"])
        for key in ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")
        if key in item["metadata"]
    ]
    assert len(expected) >= 2 * len(body["items"]) > 0

    stripped, paths = strip_noise(body)

    assert [path for path in paths if path.startswith("items[")] == expected
    assert isinstance(stripped, dict)
    assert isinstance(stripped["items"], list)
    for item in stripped["items"]:
        assert isinstance(item, dict)
        assert isinstance(item["metadata"], dict)
        assert "uid" not in item["metadata"]
        assert "name" in item["metadata"]
    # The input is not modified.
    assert "uid" in body["items"][0]["metadata"]


# --- missing sides -----------------------------------------------------------------------


def test_missing_left_renders_right_fully(load_events: Callable[[str], list[Event]]) -> None:
    event = find_event(load_events(OPENSHIFT), verb="get", resource="namespaces")
    assert "requestObject" not in event

    diff = side_by_side(None, event["responseObject"])

    assert diff.left.is_missing
    assert diff.left.lines == ()
    assert not diff.right.is_missing
    assert all(row.kind is RowKind.ADDED for row in diff.rows)
    assert diff.added == len(diff.right.lines) == len(diff.rows) > 0
    assert not diff.is_identical
    assert_well_formed(diff)


def test_missing_right_renders_left_fully(load_events: Callable[[str], list[Event]]) -> None:
    event = find_event(load_events(FALCO), verb="create", resource="namespaces")
    assert "responseObject" not in event

    diff = side_by_side(event["requestObject"], None)

    assert diff.right.is_missing
    assert diff.right.body_kind is BodyKind.MISSING
    assert diff.removed == len(diff.left.lines) == len(diff.rows) > 0
    assert_well_formed(diff)


def test_missing_side_differs_from_empty_object() -> None:
    missing = side_by_side(None, {})
    empty = side_by_side({}, {})

    assert missing.left.is_missing
    assert not missing.is_identical
    assert missing.right.lines == ("{}",)
    assert empty.is_identical
    assert not empty.left.is_missing


def test_both_sides_missing() -> None:
    diff = side_by_side(None, None)

    assert diff.rows == ()
    assert diff.left.is_missing
    assert diff.right.is_missing
    assert diff.is_identical


# --- noise -------------------------------------------------------------------------------


def test_managed_fields_are_hidden_and_counted(
    load_events: Callable[[str], list[Event]],
) -> None:
    # No real body in the fixtures carries managedFields (their audit policies omit them), so a
    # real response gets the shape the API server would add.
    event = find_event(load_events(OPENSHIFT), verb="patch", resource="deployments")
    response = copy.deepcopy(event["responseObject"])
    response["metadata"]["managedFields"] = [
        {
            "manager": "cluster-network-operator/operconfig",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        }
    ]

    hidden = side_by_side(event["requestObject"], response)
    shown = side_by_side(event["requestObject"], response, hide_noise=False)

    assert "metadata.managedFields" in hidden.noise_paths
    assert hidden.noise_count == 5
    assert not any("managedFields" in line or "f:replicas" in line for line in hidden.right.lines)
    assert "  managedFields:" in shown.right.lines
    assert shown.added > hidden.added
    assert "managedFields" in response["metadata"]


def test_noise_is_only_removed_from_object_metadata() -> None:
    body = {
        "kind": "Pod",
        "metadata": {"name": "p", "uid": "u-1"},
        "spec": {"template": {"metadata": {"uid": "kept"}}, "uid": "kept-too"},
    }

    stripped, paths = strip_noise(body)

    assert paths == ("metadata.uid",)
    assert stripped == {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"template": {"metadata": {"uid": "kept"}}, "uid": "kept-too"},
    }


# --- folding -----------------------------------------------------------------------------


def test_long_equal_stretches_fold_and_keep_every_hidden_row(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="patch", resource="deployments")
    before = event["responseObject"]
    after = copy.deepcopy(before)
    after["spec"]["replicas"] = 3

    diff = side_by_side(before, after, context=2)

    assert [row.kind for row in diff.rows] == [
        RowKind.FOLD,
        RowKind.EQUAL,
        RowKind.EQUAL,
        RowKind.CHANGED,
        RowKind.EQUAL,
        RowKind.EQUAL,
        RowKind.FOLD,
    ]
    changed = diff.rows[3]
    assert changed.left is not None
    assert changed.right is not None
    assert (changed.left.text, changed.right.text) == ("  replicas: 1", "  replicas: 3")
    head, tail = diff.rows[0], diff.rows[-1]
    assert head.hidden_count + 2 + 1 + 2 + tail.hidden_count == len(diff.left.lines)
    assert [row.left.number for row in head.hidden_rows if row.left] == list(
        range(1, head.hidden_count + 1)
    )
    assert_well_formed(diff)


def test_fold_threshold_is_more_than_twice_the_context() -> None:
    def body(value: int, middle: int) -> dict[str, int]:
        keys = {"a": value, **{f"m{i:02}": i for i in range(middle)}, "z": value}
        return keys

    at_threshold = side_by_side(body(1, 6), body(2, 6), context=3)
    above = side_by_side(body(1, 7), body(2, 7), context=3)
    no_context = side_by_side(body(1, 1), body(2, 1), context=0)

    assert RowKind.FOLD not in [row.kind for row in at_threshold.rows]
    folds = [row for row in above.rows if row.kind is RowKind.FOLD]
    assert len(folds) == 1
    assert folds[0].hidden_count == 1
    assert [row.kind for row in no_context.rows] == [
        RowKind.CHANGED,
        RowKind.FOLD,
        RowKind.CHANGED,
    ]
    for diff in (at_threshold, above, no_context):
        assert_well_formed(diff)
    with pytest.raises(ValueError, match="context"):
        side_by_side({}, {}, context=-1)


def test_replace_block_of_unequal_length_pads_the_shorter_side() -> None:
    diff = side_by_side({"k": ["a", "b"]}, {"k": ["x", "y", "z", "w"]}, context=0)

    rows = list(expand(diff.rows))
    assert [row.kind for row in rows] == [
        RowKind.EQUAL,
        RowKind.CHANGED,
        RowKind.CHANGED,
        RowKind.ADDED,
        RowKind.ADDED,
    ]
    assert (diff.added, diff.removed, diff.changed) == (2, 0, 2)
    assert_well_formed(diff)


# --- redaction ---------------------------------------------------------------------------


def test_redaction_markers_compare_without_revealing_hashes(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(FALCO), verb="create", resource="configmaps")
    left = copy.deepcopy(event["requestObject"])
    right = copy.deepcopy(event["responseObject"])
    left["data"] = {"same": MARKER_A, "rotated": MARKER_A, "dropped": MARKER_B}
    right["data"] = {"same": MARKER_A, "rotated": MARKER_B, "new": MARKER_C}

    diff = side_by_side(left, right)

    assert f"  same: {REDACTED_UNCHANGED}" in diff.left.lines
    assert f"  same: {REDACTED_UNCHANGED}" in diff.right.lines
    # The older side says "redacted", the newer "redacted (changed)": a changed, counted line.
    assert f"  rotated: {REDACTED}" in diff.left.lines
    assert f"  rotated: {REDACTED_CHANGED}" in diff.right.lines
    rotated = [
        row
        for row in diff.rows
        if row.right is not None and row.right.text == f"  rotated: {REDACTED_CHANGED}"
    ]
    assert [row.kind for row in rotated] == [RowKind.CHANGED]
    assert rotated[0].left is not None
    assert rotated[0].left.text == f"  rotated: {REDACTED}"
    same = [row for row in diff.rows if row.left and row.left.text.startswith("  same:")]
    assert [row.kind for row in same] == [RowKind.EQUAL]
    assert diff.changed >= 1
    assert not diff.is_identical
    assert f"  dropped: {REDACTED}" in diff.left.lines
    assert f"  new: {REDACTED}" in diff.right.lines
    text = all_rendered_text(diff)
    assert "hmac-sha256" not in text
    for marker in (MARKER_A, MARKER_B, MARKER_C):
        assert marker[22:-1] not in text
    assert_well_formed(diff)


def test_markers_against_missing_side_plain_value_and_inside_strings() -> None:
    left = {
        "token": MARKER_A,
        "note": f"prefix {MARKER_B} suffix",
        "list": [MARKER_A, MARKER_B],
        "trailing": MARKER_C + "\n",
    }
    right = {"token": "plain", "list": [MARKER_A]}

    masked_left, masked_right = mask_redactions(left, right)
    alone = side_by_side(left, None)

    assert masked_left == {
        "token": REDACTED,
        "note": "prefix [redacted] suffix",
        "list": [REDACTED_UNCHANGED, REDACTED],
        "trailing": "[redacted]\n",
    }
    assert masked_right == {"token": "plain", "list": [REDACTED_UNCHANGED]}
    assert "token: redacted" in alone.left.lines
    assert "hmac-sha256" not in all_rendered_text(alone)
    assert left["token"] == MARKER_A


def test_secret_rotation_alone_is_one_changed_line() -> None:
    secret = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "db"}}
    before = {**secret, "data": {"password": MARKER_A, "user": MARKER_B}}
    after = {**secret, "data": {"password": MARKER_C, "user": MARKER_B}}

    diff = side_by_side(before, after)
    unchanged = side_by_side(before, copy.deepcopy(before))

    assert (diff.added, diff.removed, diff.changed) == (0, 0, 1)
    assert not diff.is_identical
    assert f"  user: {REDACTED_UNCHANGED}" in diff.right.lines
    assert unchanged.is_identical
    assert f"  password: {REDACTED_UNCHANGED}" in unchanged.right.lines


def test_markers_inside_strings_are_compared_by_hash() -> None:
    before = {"note": f"a {MARKER_A} b {MARKER_B}", "same": f"x {MARKER_A}", "other": "v1"}
    after = {"note": f"a {MARKER_A} b {MARKER_C}", "same": f"x {MARKER_A}", "other": "v2"}

    masked_left, masked_right = mask_redactions(before, after)
    diff = side_by_side(before, after)

    assert masked_left["note"] == "a [redacted] b [redacted]"
    assert masked_right["note"] == "a [redacted] b [redacted (changed)]"
    assert masked_left["same"] == masked_right["same"] == "x [redacted]"
    assert diff.changed == 2
    assert "hmac-sha256" not in all_rendered_text(diff)


def test_json_patch_values_are_masked() -> None:
    lines = render_json_patch([{"op": "add", "path": "/data/password", "value": MARKER_A}])

    assert lines == ['add /data/password: "redacted"']


# --- classification and JSON patch -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, BodyKind.MISSING),
        ([{"op": "replace", "path": "/spec/replicas", "value": 3}], BodyKind.JSON_PATCH),
        ([{"op": "remove", "path": "/a"}, {"op": "test", "path": "/b", "value": 1}], "json_patch"),
        ([], BodyKind.OTHER),
        ([{"op": "replace"}], BodyKind.OTHER),
        ([{"op": "replace", "path": "/a"}, "x"], BodyKind.OTHER),
        ({"kind": "Status", "status": "Failure", "code": 409}, BodyKind.STATUS),
        ({"kind": "PodList", "items": []}, BodyKind.LIST),
        ({"kind": "PodList"}, BodyKind.OBJECT),
        ({"kind": "Pod", "items": []}, BodyKind.OBJECT),
        ({}, BodyKind.OBJECT),
        ("text", BodyKind.OTHER),
        (5, BodyKind.OTHER),
    ],
)
def test_classify_body(body: object, expected: BodyKind) -> None:
    assert classify_body(body) == expected


def test_render_json_patch() -> None:
    ops: list[object] = [
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels", "value": {"b": "2", "a": "é"}},
        {"op": "remove", "path": "/spec/paused"},
        {"op": "move", "from": "/a", "path": "/b"},
        {"op": "add", "path": "/x\ny", "value": "v" * 500},
        "not an op",
    ]

    lines = render_json_patch(ops)

    assert lines[:4] == [
        "replace /spec/replicas: 3",
        'add /metadata/labels: {"a":"é","b":"2"}',
        "remove /spec/paused",
        "move /a -> /b",
    ]
    assert lines[4].startswith('add /x\\ny: "' + "v" * 100)
    assert lines[4].endswith("… (302 more characters)")
    assert lines[5] == '"not an op"'
    assert all("\n" not in line for line in lines)


# --- canonical YAML ----------------------------------------------------------------------


def test_yaml_is_sorted_block_style_unwrapped_and_literal_for_multiline() -> None:
    long_value = "word " * 200
    lines = render_yaml_lines(
        {"b": {"y": [1, {"k": None}], "x": "é 日本"}, "a": long_value, "c": "one\ntwo\n"}
    )

    assert lines == [
        f"a: '{long_value}'",
        "b:",
        "  x: é 日本",
        "  y:",
        "  - 1",
        "  - k: null",
        "c: |",
        "  one",
        "  two",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", ["abc"]),
        (None, ["null"]),
        (12, ["12"]),
        ({}, ["{}"]),
        ([], ["[]"]),
        ({"k": "a\n\n"}, ["k: |+", "  a", ""]),
        ({"k": "x\u2028y"}, ['k: "x\\Ly"']),
    ],
)
def test_yaml_edge_values(value: object, expected: list[str]) -> None:
    assert render_yaml_lines(value) == expected


def deeply_nested(depth: int) -> object:
    value: object = "bottom"
    for level in range(depth):
        value = {"d": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        deeply_nested(5_000),
        "x" * 1_000_000,
        {"s": "\ud800 lone surrogate", "e": "😀", "c": "\x00\x1b\t\r\n"},
        {"big": 10**5_000, "neg": -(2**80), "f": [1e308, -0.0, float("nan"), float("inf")]},
        [{}, [], "", [[]], {"": {}}],
        {"...": "...", "- x": "? y", "#": "key: value"},
    ],
    ids=["deep", "huge-string", "unicode", "numbers", "empties", "yaml-syntax"],
)
def test_rendering_never_crashes(value: object) -> None:
    lines = render_yaml_lines(value)

    assert lines
    assert all(isinstance(line, str) and "\n" not in line for line in lines)
    assert_well_formed(side_by_side(value, {"other": value}))


def test_long_real_line_marks_only_the_edited_namespace(
    load_events: Callable[[str], list[Event]],
) -> None:
    event = find_event(load_events(OPENSHIFT), verb="patch", resource="deployments")
    before = event["requestObject"]
    after = copy.deepcopy(before)
    container = after["spec"]["template"]["spec"]["containers"][0]
    container["command"][2] = container["command"][2].replace(
        "openshift-logging", "openshift-l0gging"
    )

    diff = side_by_side(before, after)

    changed = [row for row in expand(diff.rows) if row.kind is RowKind.CHANGED]
    assert len(changed) == 1
    left, right = changed[0].left, changed[0].right
    assert left is not None
    assert right is not None
    # The edited line has ~1,500 characters: the in-line diff must not mark it all.
    assert len(left.text) > 1_000
    assert [s.text for s in left.segments if s.is_changed] == ["o"]
    assert [s.text for s in right.segments if s.is_changed] == ["0"]
    assert "".join(s.text for s in right.segments) == right.text


def test_split_changed_line_cleans_up_tiny_equal_islands() -> None:
    left, right = split_changed_line("  name: foo-abc", "  name: bar-xyz")

    assert left == (Segment("  name: ", False), Segment("foo-abc", True))
    assert right == (Segment("  name: ", False), Segment("bar-xyz", True))


# --- property-style: columns reproduce both YAML renderings ------------------------------


def mutate(value: Any, rng: random.Random, depth: int = 0) -> Any:
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            roll = rng.random()
            if roll < 0.08:
                continue
            result[key] = mutate(item, rng, depth + 1) if roll < 0.6 else item
        if rng.random() < 0.15:
            result[f"added{rng.randrange(100)}"] = rng.choice([1, "new", [1, 2], {"n": None}])
        return result
    if isinstance(value, list):
        items = [mutate(item, rng, depth + 1) for item in value if rng.random() > 0.1]
        if rng.random() < 0.2:
            items.insert(rng.randrange(len(items) + 1), "inserted\nline")
        return items
    if isinstance(value, str) and value and rng.random() < 0.3:
        position = rng.randrange(len(value))
        return value[:position] + rng.choice("xyz-\n") + value[position + 1 :]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and rng.random() < 0.3:
        return value + rng.randrange(1, 5)
    return value


def test_columns_reproduce_both_renderings_for_random_pairs(
    load_events: Callable[[str], list[Event]],
) -> None:
    bodies = [
        body
        for name in (OPENSHIFT, FALCO)
        for event in load_events(name)
        for body in (event.get("requestObject"), event.get("responseObject"))
        if isinstance(body, dict) and len(json.dumps(body)) < 20_000
    ]
    rng = random.Random(20250130)
    checked = 0
    for _ in range(150):
        base = rng.choice(bodies)
        left = rng.choice([base, mutate(base, rng), rng.choice(bodies)])
        right = mutate(base, rng)
        context = rng.randrange(0, 5)

        shown = side_by_side(left, right, hide_noise=False, context=context)
        hidden = side_by_side(left, right, hide_noise=True, context=context)

        assert left_column(shown) == render_yaml_lines(left)
        assert right_column(shown) == render_yaml_lines(right)
        assert left_column(hidden) == render_yaml_lines(strip_noise(left)[0])
        assert right_column(hidden) == render_yaml_lines(strip_noise(right)[0])
        for diff in (shown, hidden):
            assert_well_formed(diff)
            # Context rows always separate a fold from a change.
            for index, row in enumerate(diff.rows):
                if row.kind is RowKind.FOLD and context > 0:
                    neighbours = diff.rows[max(index - 1, 0) : index + 2]
                    assert all(n.kind in (RowKind.EQUAL, RowKind.FOLD) for n in neighbours)
        checked += 1
    assert checked == 150


def test_render_version_is_the_lone_side_of_a_diff() -> None:
    body = {
        "kind": "Secret",
        "metadata": {"name": "s", "resourceVersion": "7", "uid": "u"},
        "data": {"k": "[redacted:hmac-sha256:" + "a" * 32 + "]"},
    }
    assert render_version(body) == side_by_side(None, body).right.lines
    assert "resourceVersion" not in "\n".join(render_version(body))
    assert render_version(None) == ()


def test_last_applied_and_token_markers_compare_by_hash() -> None:
    redactor = Redactor(b"0123456789abcdef")

    def secret(password: str) -> dict[str, Any]:
        applied = json.dumps({"data": {"password": password}})
        event = {
            "objectRef": {"resource": "secrets", "name": "db"},
            "responseObject": {
                "kind": "Secret",
                "metadata": {"name": "db", "annotations": {LAST_APPLIED: applied}},
                "data": {"password": password},
            },
        }
        redactor.redact_event(event)
        return dict(event["responseObject"])

    shown = side_by_side(secret("b2xk"), secret("bmV3"), hide_noise=False)
    annotation = [row for row in shown.rows if row.right and LAST_APPLIED in row.right.text]
    assert [row.kind for row in annotation] == [RowKind.CHANGED]
    assert annotation[0].right is not None
    assert annotation[0].right.text.endswith(f"{LAST_APPLIED}: {REDACTED_CHANGED}")
    assert shown.changed == 2  # the password and the annotation
    same = side_by_side(secret("b2xk"), secret("b2xk"), hide_noise=False)
    assert same.is_identical

    review = {
        "objectRef": {"resource": "tokenreviews", "apiGroup": "authentication.k8s.io"},
        "requestObject": {"kind": "TokenReview", "spec": {"token": "eyJhbGciOi"}},
        "responseObject": {
            "kind": "TokenReview",
            "spec": {"token": "eyJhbGciOi"},
            "status": {"authenticated": True},
        },
    }
    redactor.redact_event(review)
    tokens = side_by_side(review["requestObject"], review["responseObject"])
    assert f"  token: {REDACTED_UNCHANGED}" in tokens.right.lines
    assert tokens.changed == 0
    first = {"kind": "TokenRequest", "status": {"token": redactor.marker("a")}}
    second = {"kind": "TokenRequest", "status": {"token": redactor.marker("b")}}
    rotated = side_by_side(first, second)
    assert f"  token: {REDACTED_CHANGED}" in rotated.right.lines
    assert rotated.changed == 1
