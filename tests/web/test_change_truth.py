"""Truthful change views through the real app and PostgreSQL: secrets that changed read as
changed, unknown results read as unknown, patches are shown as sent or computed (marked)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.audit.changes import Outcome
from app.audit.diff import RowKind
from tests.builders import audit_event, secret_event
from tests.web.conftest import TemplateSpy, post_events

pytestmark = pytest.mark.asyncio(loop_scope="session")

HISTORY = "/objects/test/namespaces/payments/configmaps/app-config"
SECRET_HISTORY = "/objects/test/namespaces/payments/secrets/db-password"
CM_REF = {
    "resource": "configmaps",
    "namespace": "payments",
    "name": "app-config",
    "apiVersion": "v1",
}
OK = {"metadata": {}, "code": 200}


def config_map(version: str, **data: str) -> dict[str, Any]:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "app-config", "namespace": "payments", "resourceVersion": version},
        "data": data,
    }


def at(minute: int) -> dict[str, str]:
    stamp = f"2026-11-20T10:{minute:02d}:00.000000Z"
    return {"requestReceivedTimestamp": stamp, "stageTimestamp": stamp}


def cm(verb: str, minute: int, **overrides: Any) -> dict[str, Any]:
    overrides.setdefault(
        "responseStatus", {"metadata": {}, "code": 201 if verb == "create" else 200}
    )
    return audit_event(verb=verb, objectRef=CM_REF, **at(minute), **overrides)


def cm_create() -> dict[str, Any]:
    body = config_map("1", LOG_LEVEL="info", MODE="live")
    return cm("create", 0, requestObject=body, responseObject=body)


async def event_id(web: httpx.AsyncClient, audit_id: str) -> int:
    items = (await web.get("/events", params={"include_reads": "true", "limit": 500})).json()[
        "items"
    ]
    return next(item["id"] for item in items if item["audit_id"] == audit_id)


def secret_update(password: str, minute: int) -> dict[str, Any]:
    return secret_event(
        {"password": password, "user": "YWRtaW4="}, verb="update", responseStatus=OK, **at(minute)
    )


async def post_secret_rotation(web: httpx.AsyncClient) -> tuple[int, int]:
    create = secret_event({"password": "b2xk", "user": "YWRtaW4="}, **at(0))
    rotate = secret_update("bmV3", 10)
    same = secret_update("bmV3", 20)
    await post_events(web, [create, rotate, same])
    return await event_id(web, rotate["auditID"]), await event_id(web, same["auditID"])


async def test_secret_rotation_is_changed_in_previous_tab_and_history(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    rotated, unchanged = await post_secret_rotation(web)

    page = await web.get(f"/changes/{rotated}")

    assert spy.context["tab"] == "previous"
    view = spy.context["view"]
    assert view.change.outcome is Outcome.CHANGED
    assert view.shows_counts
    assert (view.diff.added, view.diff.removed, view.diff.changed) == (0, 0, 1)
    rows = {row.left.text.split(":")[0].strip(): row for row in view.diff.rows if row.left}
    assert rows["password"].kind is RowKind.CHANGED
    assert rows["password"].left.text == "  password: redacted"
    assert rows["password"].right.text == "  password: redacted (changed)"
    assert rows["user"].kind is RowKind.EQUAL
    assert "data.password: changed (redacted)" in page.text
    assert "~1</span> lines" in page.text
    assert "No differences" not in page.text
    assert "hmac-sha256" not in page.text

    await web.get(f"/changes/{unchanged}")
    same = spy.context["view"]
    assert same.change.outcome is Outcome.UNCHANGED
    assert (same.diff.added, same.diff.removed, same.diff.changed) == (0, 0, 0)

    history = await web.get(SECRET_HISTORY)
    newest, rotation, create = spy.context["entries"]
    assert newest.change.outcome is Outcome.UNCHANGED
    assert rotation.change.summary == "data.password: changed (redacted)"
    assert rotation.diff is not None
    assert rotation.diff.changed == 1
    assert create.change.outcome is Outcome.CREATED
    assert "reads-toggle" not in history.text  # no reads, no switch
    assert "data.password: changed (redacted)" in history.text
    assert "hmac-sha256" not in history.text


async def test_secret_rotation_through_the_api_event_detail(web: httpx.AsyncClient) -> None:
    rotated, unchanged = await post_secret_rotation(web)

    changed = (await web.get(f"/api/v1/events/{rotated}")).json()["change"]
    same = (await web.get(f"/api/v1/events/{unchanged}")).json()["change"]

    assert changed["outcome"] == "changed"
    assert changed["summary"] == "data.password: changed (redacted)"
    assert changed["fields"] == [
        {
            "path": "data.password",
            "change": "changed",
            "before": "redacted",
            "after": "redacted",
            "is_redacted": True,
        }
    ]
    assert changed["previous_event_id"] is not None
    assert same["outcome"] == "unchanged"
    assert same["fields"] == []
    assert same["previous_event_id"] == rotated


async def test_metadata_level_update_is_result_not_recorded_everywhere(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    update = cm("update", 10, level="Metadata")
    await post_events(web, [cm_create(), update])
    update_id = await event_id(web, update["auditID"])

    history = await web.get(HISTORY)
    entry = spy.context["entries"][0]
    assert entry.change.outcome is Outcome.NOT_RECORDED
    assert entry.diff is None
    assert entry.version_lines == ()
    assert "Result not recorded" in history.text
    assert "No change" not in history.text

    detail = await web.get(f"/changes/{update_id}")
    view = spy.context["view"]
    assert spy.context["tab"] == "previous"
    assert view.change.outcome is Outcome.NOT_RECORDED
    assert not view.shows_counts
    assert "Result not recorded" in detail.text
    assert "No differences" not in detail.text
    assert "lines</span>" not in detail.text  # no +/−/~ counts for an unknown result

    api = (await web.get(f"/api/v1/events/{update_id}")).json()["change"]
    assert api["outcome"] == "not_recorded"
    assert "Metadata level" in api["note"]


async def test_request_received_only_is_not_recorded_and_stages_fold(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    received_only = cm("patch", 10, stage="RequestReceived", responseStatus=None, level="Metadata")
    both = cm("update", 20, level="Metadata")
    both_received = {**both, "stage": "RequestReceived", "responseStatus": None}
    await post_events(web, [cm_create(), received_only, both_received, both])

    await web.get(HISTORY)

    entries = spy.context["entries"]
    assert [e.row.event.stage for e in entries] == [
        "ResponseComplete",
        "RequestReceived",
        "ResponseComplete",
    ]
    assert [e.change.outcome for e in entries[:2]] == [Outcome.NOT_RECORDED] * 2


async def test_json_patch_without_response_is_computed_and_marked(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    patch = cm(
        "patch",
        10,
        requestObject=[{"op": "replace", "path": "/data/LOG_LEVEL", "value": "debug"}],
    )
    await post_events(web, [cm_create(), patch])
    patch_id = await event_id(web, patch["auditID"])

    page = await web.get(f"/changes/{patch_id}")

    view = spy.context["view"]
    assert view.change.is_computed
    assert view.change.summary == "data.LOG_LEVEL: info → debug"
    assert view.right.title == "This version (computed from the patch)"
    assert view.diff.changed == 1
    assert view.patch_lines == ('replace /data/LOG_LEVEL: "debug"',)
    assert "(computed)" in page.text
    assert "The patch as sent" in page.text
    history = await web.get(HISTORY)
    assert "Changed (computed):" in history.text


async def test_merge_patch_without_response_is_computed(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    patch = cm("patch", 10, requestObject={"data": {"MODE": None, "LOG_LEVEL": "warn"}})
    await post_events(web, [cm_create(), patch])

    await web.get(f"/changes/{await event_id(web, patch['auditID'])}")

    change = spy.context["view"].change
    assert change.is_computed
    assert [f.text for f in change.fields] == [
        "data.LOG_LEVEL: info → warn",
        "data.MODE: live → (absent)",
    ]


async def test_strategic_merge_patch_is_shown_as_the_patch(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    smp = {"data": {"LOG_LEVEL": "debug"}, "metadata": {"$setElementOrder/finalizers": []}}
    patch = cm("patch", 10, requestObject=smp)
    await post_events(web, [cm_create(), patch])
    patch_id = await event_id(web, patch["auditID"])

    page = await web.get(f"/changes/{patch_id}")

    view = spy.context["view"]
    assert view.change.outcome is Outcome.NOT_RECORDED
    assert not view.change.is_computed
    assert "strategic-merge" in view.change.note
    assert not view.shows_counts
    assert "  LOG_LEVEL: debug" in view.patch_lines
    assert "The patch as sent" in page.text
    assert "Result not recorded" in page.text
    history = await web.get(HISTORY)
    entry = spy.context["entries"][0]
    assert entry.patch_lines == view.patch_lines
    assert not entry.is_patch_ops
    assert "$setElementOrder/finalizers" in history.text


async def test_patch_with_response_is_not_diffed_against_the_whole_object(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    patch = cm(
        "patch",
        10,
        requestObject={"data": {"LOG_LEVEL": "debug"}},
        responseObject=config_map("2", LOG_LEVEL="debug", MODE="live"),
    )
    await post_events(web, [cm_create(), patch])
    patch_id = await event_id(web, patch["auditID"])

    page = await web.get(f"/changes/{patch_id}", params={"tab": "request"})

    view = spy.context["view"]
    assert not view.shows_counts
    assert view.patch_lines == ("data:", "  LOG_LEVEL: debug")
    assert "lines</span>" not in page.text
    await web.get(f"/changes/{patch_id}")
    recorded = spy.context["view"].change
    assert recorded.outcome is Outcome.CHANGED
    assert not recorded.is_computed


async def test_patch_without_previous_version_says_so(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    patch = cm("patch", 10, requestObject=[{"op": "add", "path": "/data/X", "value": "1"}])
    await post_events(web, [patch])

    page = await web.get(f"/changes/{await event_id(web, patch['auditID'])}")

    view = spy.context["view"]
    assert view.change.outcome is Outcome.NOT_RECORDED
    assert "no earlier version" in view.change.note
    assert view.left.note == "No earlier version of this object is stored."
    assert "add /data/X" in page.text


async def test_unrecorded_change_in_between_blocks_computing_and_is_named(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    meta = cm("update", 10, level="Metadata")
    patch = cm("patch", 20, requestObject={"data": {"LOG_LEVEL": "debug"}})
    update = cm("update", 30, responseObject=config_map("4", LOG_LEVEL="debug", MODE="off"))
    # A request stored with both stages is one known result, not an unrecorded change.
    ok = cm("update", 40, responseObject=config_map("5", LOG_LEVEL="debug", MODE="on"))
    ok_received = {**ok, "stage": "RequestReceived", "responseStatus": None}
    last = cm("update", 50, responseObject=config_map("6", LOG_LEVEL="trace", MODE="on"))
    await post_events(web, [cm_create(), meta, patch, update, ok_received, ok, last])

    await web.get(f"/changes/{await event_id(web, patch['auditID'])}")
    blocked = spy.context["view"].change
    assert blocked.outcome is Outcome.NOT_RECORDED
    assert "1 change has no recorded result" in blocked.note
    await web.get(f"/changes/{await event_id(web, update['auditID'])}")
    after_gap = spy.context["view"].change
    assert after_gap.outcome is Outcome.CHANGED
    assert after_gap.gap_note is not None
    assert after_gap.gap_note.startswith("2 changes have no recorded result")
    api = (await web.get(f"/api/v1/events/{await event_id(web, last['auditID'])}")).json()
    assert api["change"]["unrecorded_changes_before"] == 0
    assert api["change"]["summary"] == "data.LOG_LEVEL: debug → trace"

    await web.get(HISTORY)
    by_id = {e.row.event.audit_id: e for e in spy.context["entries"] if not e.is_reads}
    assert by_id[update["auditID"]].change.gap_note == after_gap.gap_note
    assert by_id[last["auditID"]].change.gap_note is None


async def test_reads_fold_into_one_line_and_the_switch_shows_them(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    reads = [
        cm("get", 10 + i, level="Metadata", user={"username": name})
        for i, name in enumerate(["alice", "bob", "alice"])
    ]
    denied = cm(
        "list",
        14,
        level="Metadata",
        user={"username": "bob"},
        responseStatus={"metadata": {}, "code": 403},
    )
    delete = cm("delete", 15, responseObject={"kind": "Status", "status": "Success"})
    await post_events(web, [cm_create(), *reads, denied, delete])

    page = await web.get(HISTORY)
    deleted = spy.context["entries"][0]
    folded = await web.get(HISTORY, params={"reads": "show"}, headers={"HX-Request": "true"})

    assert deleted.change.outcome is Outcome.DELETED
    assert deleted.diff is not None
    assert deleted.diff.removed > 0
    assert "4 reads by bob, alice (1 failed)"  # newest first in page.text
    assert 'href="/objects/test/namespaces/payments/configmaps/app-config?reads=show"' in page.text
    assert spy.template == "objects/_history.html"
    assert folded.text.count('class="entry outcome-read') == 3
    assert folded.text.count('class="entry outcome-failed failed') == 1
    assert "Fold reads" in folded.text


async def test_authorization_reason_is_listed_once(web: httpx.AsyncClient) -> None:
    reason = 'RBAC: allowed by ClusterRoleBinding "ops" of ClusterRole "edit"'
    event = cm_create()
    event["annotations"] = {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": reason,
        "mutation.webhook.admission.k8s.io/round_0_index_0": "{}",
    }
    await post_events(web, [event])

    page = await web.get(f"/changes/{await event_id(web, event['auditID'])}")

    assert page.text.count("ClusterRoleBinding &#34;ops&#34;") == 1
    assert "mutation.webhook.admission.k8s.io/round_0_index_0" in page.text


@pytest.mark.parametrize(
    "overrides",
    [
        {"verb": "patch", "requestObject": "not json patch"},
        {"verb": "patch", "requestObject": 42},
        {"verb": "patch", "requestObject": [1, {"op": "add"}]},
        {"verb": "patch", "requestObject": [{"op": "move", "from": "/nope", "path": "/x"}]},
        {"verb": "patch", "requestObject": [{"op": "replace", "path": "", "value": "scalar"}]},
        {"verb": "patch", "requestObject": {"data": {"A": None}, "\u2028": {"$patch": "x"}}},
        {"verb": "update", "responseObject": [1, 2, 3]},
        {"verb": "update", "responseObject": "text"},
        {"verb": "update", "responseObject": {"kind": "ConfigMap", "data": {"k": [{"a": [[]]}]}}},
    ],
)
async def test_odd_bodies_never_break_the_change_views(
    web: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    event = cm(overrides.pop("verb"), 10, **overrides)
    await post_events(web, [cm_create(), event])
    event_id_ = await event_id(web, event["auditID"])

    for tab in ("request", "previous", "raw"):
        page = await web.get(f"/changes/{event_id_}", params={"tab": tab, "noise": "show"})
        assert page.status_code == 200, tab
    assert (await web.get(HISTORY, params={"reads": "show"})).status_code == 200
    api = await web.get(f"/api/v1/events/{event_id_}")
    assert api.status_code == 200
    assert api.json()["change"]["outcome"] in ("not_recorded", "changed", "unchanged")
