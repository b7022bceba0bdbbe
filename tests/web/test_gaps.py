"""Gap markers on object history and event detail, built from real fixture events."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from tests.conftest import FIXTURES, requires_fixtures
from tests.web.conftest import TemplateSpy, post_events

pytestmark = [pytest.mark.asyncio(loop_scope="session"), requires_fixtures]


def real_event(file: str, predicate: Any) -> dict[str, Any]:
    for line in (FIXTURES / file).read_text().splitlines():
        event = json.loads(line)
        if predicate(event):
            return dict(event)
    raise AssertionError(f"no such event in {file}")


def real_update() -> dict[str, Any]:
    """OpenShift's recorded RequestResponse update of CatalogSource certified-operators."""
    return real_event(
        "openshift-clo__apiaudit_audit_in.jsonl",
        lambda e: (
            e.get("verb") == "update"
            and e["objectRef"].get("name") == "certified-operators"
            and e.get("level") == "RequestResponse"
        ),
    )


def successive_updates(count: int) -> list[dict[str, Any]]:
    """The real update replayed as a chain: update i is based on the version update i-1 stored."""
    template = real_update()
    base = int(template["requestObject"]["metadata"]["resourceVersion"])
    chain = []
    for i in range(count):
        event = copy.deepcopy(template)
        event["auditID"] = f"{template['auditID'][:-2]}{i:02d}"
        event["requestObject"]["metadata"]["resourceVersion"] = str(base + i)
        event["objectRef"]["resourceVersion"] = str(base + i)
        event["responseObject"]["metadata"]["resourceVersion"] = str(base + i + 1)
        event["stageTimestamp"] = f"2026-11-20T10:0{i}:00.000000Z"
        event["requestReceivedTimestamp"] = f"2026-11-20T10:0{i}:00.000000Z"
        chain.append(event)
    return chain


def history_url() -> str:
    return (
        "/objects/test/namespaces/openshift-marketplace/"
        "catalogsources.operators.coreos.com/certified-operators"
    )


async def test_resource_version_jump_when_an_update_is_missing(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    first, _, third = successive_updates(3)
    await post_events(web, [first, third])
    page = await web.get(history_url())
    assert page.status_code == 200
    assert spy.template == "objects/page.html"
    entries = spy.context["entries"]
    gaps = spy.context["gaps"]
    newest, oldest = entries[0].row.event, entries[1].row.event
    assert oldest.id not in gaps
    base = int(first["requestObject"]["metadata"]["resourceVersion"])
    [jump] = gaps[newest.id]
    assert jump.kind == "jump"
    assert f"based on version {base + 2}" in jump.message
    assert f"last recorded version is {base + 1}" in jump.message
    assert "resourceVersion jump" in page.text
    detail = await web.get(f"/changes/{newest.id}")
    assert [g.kind for g in spy.context["gap_list"]] == ["jump"]
    assert "a change between them was not captured" in detail.text


async def test_unbroken_chain_has_no_markers(web: httpx.AsyncClient, spy: TemplateSpy) -> None:
    await post_events(web, successive_updates(3))
    await web.get(history_url())
    assert spy.context["gaps"] == {}
    assert "gap-" not in (await web.get(history_url())).text


async def test_metadata_level_update_shows_result_not_recorded(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    # A real Metadata-level update of a Lease (ResponseComplete, 200, no bodies).
    event = real_event(
        "elastic-integrations__audit_logs_events.jsonl",
        lambda e: (
            e.get("verb") == "update"
            and e.get("level") == "Metadata"
            and e.get("objectRef", {}).get("name") == "kubelet-serving-csr-approver"
        ),
    )
    await post_events(web, [event])
    page = await web.get("/objects/test/namespaces/kube-system/leases/kubelet-serving-csr-approver")
    assert page.status_code == 200
    assert "Result not recorded: logged at Metadata level" in page.text
    [gaps] = spy.context["gaps"].values()
    assert [g.kind for g in gaps] == ["not_recorded"]
    [entry] = spy.context["entries"]
    await web.get(f"/changes/{entry.row.event.id}")
    assert [g.kind for g in spy.context["gap_list"]] == ["not_recorded"]


async def test_failed_missing_stage_and_garbage_collector(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    first, second, third = successive_updates(3)
    second["responseStatus"] = {"metadata": {}, "code": 409, "reason": "Conflict"}
    second["responseObject"] = {"kind": "Status", "apiVersion": "v1", "code": 409}
    received = copy.deepcopy(third)
    received["stage"] = "RequestReceived"
    received.pop("responseObject")
    received.pop("responseStatus")
    gone = copy.deepcopy(first)
    gone.update(
        auditID="0d0e0f10-gc00-4000-8000-000000000000",
        verb="delete",
        stageTimestamp="2026-11-20T11:00:00.000000Z",
        user={"username": "system:serviceaccount:kube-system:generic-garbage-collector"},
        responseObject={"kind": "Status", "apiVersion": "v1", "status": "Success"},
    )
    gone.pop("requestObject")
    gone["objectRef"].pop("subresource")
    await post_events(web, [first, second, received, gone])
    await web.get(history_url())
    by_kind = {g.kind: g.message for gaps in spy.context["gaps"].values() for g in gaps}
    assert by_kind["failed"].startswith("Request failed (409 Conflict)")
    assert "only the RequestReceived stage is stored" in by_kind["no_result"]
    assert "garbage collector" in by_kind["garbage_collector"]
