"""Object-history URLs whose name or namespace holds a `/` (percent-encoded as %2F): valid for
Calico and many CRDs. Through the ASGI app and through uvicorn, which both decode %2F before
routing."""

from __future__ import annotations

import httpx
import pytest

from app.audit.queries import ObjectKey
from app.web.views import object_url
from tests.builders import audit_event
from tests.web.conftest import TemplateSpy, post_events

KEY = ObjectKey(
    cluster="test",
    resource="networkpolicies",
    group="projectcalico.org",
    namespace="team/a",
    name="default.allow/dns",
)


def slashed_events() -> list[dict[str, object]]:
    ref = {
        "resource": "networkpolicies",
        "apiGroup": "projectcalico.org",
        "apiVersion": "v3",
        "namespace": KEY.namespace,
        "name": KEY.name,
    }
    cluster_ref = {"resource": "globalnetworkpolicies", "apiGroup": "projectcalico.org",
                   "apiVersion": "v3", "name": "ops/deny-all"}  # fmt: skip
    return [
        audit_event(verb="create", objectRef=ref),
        audit_event(
            verb="delete",
            objectRef=ref,
            requestReceivedTimestamp="2026-11-20T11:00:00.000001Z",
            stageTimestamp="2026-11-20T11:00:00.004000Z",
        ),
        audit_event(verb="create", objectRef=cluster_ref),
    ]


def test_object_url_encodes_slashes() -> None:
    assert object_url(KEY) == (
        "/objects/test/namespaces/team%2Fa/networkpolicies.projectcalico.org/default.allow%2Fdns"
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_history_of_slashed_names_through_asgi(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, slashed_events())
    page = await web.get(object_url(KEY))
    assert page.status_code == 200, page.text
    assert [e.row.event.verb for e in spy.context["entries"]] == ["delete", "create"]
    cluster_scoped = await web.get(
        "/objects/test/globalnetworkpolicies.projectcalico.org/ops%2Fdeny-all"
    )
    assert cluster_scoped.status_code == 200
    assert [e.row.event.verb for e in spy.context["entries"]] == ["create"]
    # A bare slash is a segment separator: that URL names no object.
    assert (await web.get("/objects/test/globalnetworkpolicies/ops/deny-all/x")).status_code == 404


def test_history_of_slashed_names_through_uvicorn(open_server: tuple[str, str]) -> None:
    url, _ = open_server
    body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": slashed_events()}
    assert httpx.post(f"{url}/ingest?cluster=test", json=body).status_code == 200
    page = httpx.get(url + object_url(KEY))
    assert page.status_code == 200
    assert "default.allow/dns" in page.text
    assert "No events" not in page.text
    timeline = httpx.get(url + "/", params={"namespace": "team/a"}).text
    assert object_url(KEY).replace("&", "&amp;") in timeline
