"""Dashboard pages through the ASGI app: templates, context, partials, errors, escaping, headers."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest

from tests.builders import audit_event
from tests.web.conftest import TemplateSpy, post_events

pytestmark = pytest.mark.asyncio(loop_scope="session")

HX = {"HX-Request": "true"}


def policy(name: str, ports: list[int], version: str) -> dict[str, Any]:
    return {
        "kind": "NetworkPolicy",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": "payments",
            "resourceVersion": version,
            "uid": "6f1c7d2e-0000-4000-8000-000000000001",
        },
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"ports": [{"port": p, "protocol": "TCP"} for p in ports]}],
        },
    }


def policy_events() -> list[dict[str, Any]]:
    """create (name only in the body), patch, a read, delete of payments/allow-web."""
    ref = {"resource": "networkpolicies", "namespace": "payments", "apiGroup": "networking.k8s.io"}
    created, patched = policy("allow-web", [80], "100"), policy("allow-web", [80, 443], "101")
    return [
        audit_event(
            verb="create",
            objectRef=ref,
            requestObject=created,
            responseObject=created,
            stageTimestamp="2026-11-20T10:00:00Z",
        ),
        audit_event(
            verb="patch",
            objectRef={**ref, "name": "allow-web"},
            requestObject=[
                {"op": "add", "path": "/spec/ingress/0/ports/1", "value": {"port": 443}}
            ],
            responseObject=patched,
            responseStatus={"metadata": {}, "code": 200},
            stageTimestamp="2026-11-20T11:00:00Z",
        ),
        audit_event(
            verb="get",
            level="Metadata",
            objectRef={**ref, "name": "allow-web"},
            responseStatus={"metadata": {}, "code": 200},
            stageTimestamp="2026-11-20T11:30:00Z",
        ),
        audit_event(
            verb="delete",
            objectRef={**ref, "name": "allow-web"},
            responseObject={"kind": "Status", "apiVersion": "v1", "status": "Success"},
            responseStatus={"metadata": {}, "code": 200},
            stageTimestamp="2026-11-20T12:00:00Z",
        ),
    ]


async def ids_by_verb(client: httpx.AsyncClient) -> dict[str, int]:
    items = (await client.get("/events", params={"limit": 100})).json()["items"]
    return {item["verb"]: item["id"] for item in items}


async def test_timeline_defaults_to_changes_and_the_api_to_everything(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, policy_events())
    page = await web.get("/")
    assert page.status_code == 200
    assert spy.template == "timeline/page.html"
    verbs = [row.event.verb for row in spy.context["rows"]]
    assert verbs == ["delete", "patch", "create"]
    assert spy.context["filters"].include_reads is False
    assert "(changes only)" in page.text
    assert page.headers["vary"] == "HX-Request"
    api = (await web.get("/events")).json()["items"]
    assert [item["verb"] for item in api] == ["delete", "get", "patch", "create"]
    await web.get("/", params={"include_reads": "true"})
    assert [row.event.verb for row in spy.context["rows"]] == ["delete", "get", "patch", "create"]
    changes = (await web.get("/events", params={"include_reads": "false"})).json()["items"]
    assert len(changes) == 3


async def test_create_row_links_to_object_history_by_body_name(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, policy_events())
    await web.get("/")
    create = spy.context["rows"][-1]
    assert create.name == "allow-web"
    assert (
        create.object_url
        == "/objects/test/namespaces/payments/networkpolicies.networking.k8s.io/allow-web"
    )


async def test_partials_for_htmx_and_full_page_for_history_restore(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, policy_events())
    response = await web.get("/", params={"namespace": "payments"}, headers=HX)
    assert spy.template == "timeline/_timeline.html"
    assert response.text.lstrip().startswith('<div id="timeline">')
    await web.get("/", headers={**HX, "HX-History-Restore-Request": "true"})
    assert spy.template == "timeline/page.html"
    first = await web.get("/events", params={"limit": 1, "include_reads": "false"})
    cursor = first.json()["next_cursor"]
    rows = await web.get("/", params={"limit": 1, "cursor": cursor}, headers=HX)
    assert spy.template == "timeline/_rows.html"
    assert rows.text.lstrip().startswith('<tbody class="page">')
    assert [row.event.verb for row in spy.context["rows"]] == ["patch"]
    await web.get("/", params={"limit": 1, "cursor": cursor})
    assert spy.template == "timeline/page.html"


async def test_filters_facets_and_histogram(web: httpx.AsyncClient, spy: TemplateSpy) -> None:
    events = policy_events() + [
        audit_event(
            verb="create",
            objectRef={"resource": "pods", "namespace": "frontend", "name": "web-1"},
            user={"username": "bob@example.com"},
            responseStatus={"metadata": {}, "code": 403},
            stageTimestamp="2026-11-20T10:30:00Z",
        )
    ]
    await post_events(web, events)
    await web.get("/", params={"namespace": "payments"})
    context = spy.context
    assert {row.event.namespace for row in context["rows"]} == {"payments"}
    # A facet counts what matches the *other* filters: both namespaces stay selectable.
    assert dict(context["facets"]["namespace"]) == {"payments": 3, "frontend": 1}
    assert dict(context["facets"]["resource"]) == {"networkpolicies": 3}
    # Namespaces are kept by no rollup: the count comes with the histogram.
    assert context["total"] is None
    await web.get("/histogram", params={"namespace": "payments"})
    assert sum(bucket.count for bucket in spy.context["buckets"]) == 3
    await web.get("/", params={"status": "failure"})
    assert [row.event.response_code for row in spy.context["rows"]] == [403]
    assert spy.context["total"] == 1
    await web.get("/histogram", params={"status": "failure"})
    assert sum(bucket.failures for bucket in spy.context["buckets"]) == 1
    page = await web.get("/", params={"q": "allow"})
    assert {row.name for row in spy.context["rows"]} == {"allow-web"}
    shown = len(spy.context["rows"])
    # A name substring is kept by no rollup: the count comes with the histogram.
    assert spy.context["total"] is None
    assert "Counting the matching requests" in page.text
    histogram = await web.get("/histogram", params={"q": "allow"}, headers=HX)
    assert spy.template == "timeline/_histogram.html"
    assert 'id="match-summary" hx-swap-oob="true"' in histogram.text
    assert f'<strong id="match-count">{shown}</strong> matching request' in histogram.text


async def test_histogram_loads_in_its_own_request_and_without_javascript(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, policy_events())
    page = await web.get("/", params={"namespace": "payments"})
    # The list is in the page; the histogram is fetched by htmx once it has painted.
    assert "buckets" not in spy.context
    slot = page.text.split('<div id="histogram-slot"')[1].split("</div>")[0]
    assert 'hx-get="/histogram?' in slot
    assert 'hx-trigger="load"' in slot
    # Without JavaScript: a link to the histogram as a page of its own.
    link = slot.split("<noscript>")[1].split('href="')[1].split('"')[0].replace("&amp;", "&")
    alone = await web.get(link)
    assert alone.status_code == 200
    assert spy.template == "timeline/histogram_page.html"
    assert spy.context["filters"].namespace == ["payments"]
    assert '<figure id="histogram"' in alone.text
    assert "Back to the list" in alone.text


async def test_histogram_bar_links_narrow_the_range(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, policy_events())
    page = await web.get("/histogram")
    bucket = next(b for b in spy.context["buckets"] if b.count)
    assert "since=2026-11-20T10%3A00%3A00Z" in page.text
    assert bucket.start.isoformat().startswith("2026-11-20T10:00:00")
    narrowed = await web.get(
        "/", params={"since": bucket.start.isoformat(), "until": bucket.end.isoformat()}
    )
    assert narrowed.status_code == 200
    assert [row.event.verb for row in spy.context["rows"]] == ["create"]


async def test_empty_state_offers_to_widen(web: httpx.AsyncClient, spy: TemplateSpy) -> None:
    page = await web.get("/", params={"window": "15m"})
    assert spy.context["rows"] == []
    assert "No requests match" in page.text
    assert "Search all time" in page.text
    assert "Include reads" in page.text


async def test_change_detail_tabs(web: httpx.AsyncClient, spy: TemplateSpy) -> None:
    await post_events(web, policy_events())
    ids = await ids_by_verb(web)
    page = await web.get(f"/changes/{ids['patch']}")
    assert spy.template == "diff/page.html"
    assert spy.context["tab"] == "previous"  # an update or patch opens on what changed
    assert spy.context["view"].change.summary.startswith("spec.ingress[0].ports: ")
    page = await web.get(f"/changes/{ids['patch']}", params={"tab": "request"})
    view = spy.context["view"]
    assert view.patch_lines == ('add /spec/ingress/0/ports/1: {"port":443}',)
    assert not view.shows_counts
    assert "JSON patch" in (view.left.note or "")
    assert "bob" not in page.text
    assert "alice@example.com" in page.text
    await web.get(f"/changes/{ids['patch']}", params={"tab": "previous"}, headers=HX)
    assert spy.template == "diff/_diff.html"
    diff = spy.context["view"].diff
    assert diff.added == 2  # the new port item: "- port: 443" and "  protocol: TCP"
    assert not diff.left.is_missing
    assert not diff.right.is_missing
    assert "metadata.resourceVersion" in diff.noise_paths
    await web.get(f"/changes/{ids['patch']}", params={"tab": "previous", "noise": "show"})
    assert spy.context["view"].diff.changed >= 1  # resourceVersion 100 -> 101
    await web.get(f"/changes/{ids['delete']}", params={"tab": "previous"})
    view = spy.context["view"]
    assert view.right.note == "Deleted by this event."
    assert view.diff.right.is_missing
    assert view.diff.removed > 0
    await web.get(f"/changes/{ids['delete']}")
    assert "deleted" in (spy.context["view"].right.note or "")
    await web.get(f"/changes/{ids['get']}")
    assert "Metadata level" in (spy.context["view"].left.note or "")
    raw = await web.get(f"/changes/{ids['create']}", params={"tab": "raw"})
    assert "&#34;auditID&#34;" in raw.text or "&quot;auditID&quot;" in raw.text


@pytest.mark.parametrize(
    "resource",
    ["networkpolicies", "networkpolicies.extensions", "networkpolicies.networking.k8s.io"],
)
async def test_object_url_forms_find_the_same_history(
    web: httpx.AsyncClient, spy: TemplateSpy, resource: str
) -> None:
    await post_events(web, policy_events())
    page = await web.get(f"/objects/test/namespaces/payments/{resource}/allow-web")
    assert page.status_code == 200
    assert len(spy.context["entries"]) == 4  # delete, one folded read, patch, create


async def test_object_history_diffs_each_event_to_the_one_before(
    web: httpx.AsyncClient, spy: TemplateSpy
) -> None:
    await post_events(web, policy_events())
    page = await web.get(
        "/objects/test/namespaces/payments/networkpolicies.networking.k8s.io/allow-web"
    )
    assert page.status_code == 200
    assert spy.template == "objects/page.html"
    entries = spy.context["entries"]
    assert [e.is_reads or e.row.event.verb for e in entries] == ["delete", True, "patch", "create"]
    delete, reads, patch, create = entries
    assert create.diff is not None
    assert create.diff.left.is_missing
    assert patch.diff is not None
    assert patch.diff.added == 2
    assert reads.is_reads
    assert reads.text == "1 read by alice@example.com"
    assert "1 read by alice@example.com" in page.text
    assert delete.diff is not None
    assert delete.diff.right.is_missing
    assert any("443" in line for line in patch.version_lines)
    assert delete.version_lines == ()
    await web.get(
        "/objects/test/namespaces/payments/networkpolicies/allow-web", params={"reads": "show"}
    )
    get = spy.context["entries"][1]
    assert get.row.event.verb == "get"
    assert get.diff is None
    assert get.change.summary == "A get request: it does not change the object."
    missing = await web.get("/objects/test/networkpolicies/nothing-here")
    assert missing.status_code == 200
    assert "No events" in missing.text


async def test_errors_are_pages_or_htmx_toasts(web: httpx.AsyncClient, spy: TemplateSpy) -> None:
    page = await web.get("/changes/424242")
    assert page.status_code == 404
    assert spy.template == "errors/error.html"
    assert "audit event 424242 not found" in page.text
    toast = await web.get("/changes/424242", headers=HX)
    assert toast.status_code == 200
    assert spy.template == "_toast.html"
    assert toast.headers["HX-Retarget"] == "#toasts"
    # A bad filter value in the page's URL never makes it an error page: it is shown inline.
    bad = await web.get("/", params={"since": "yesterday"})
    assert bad.status_code == 200
    assert spy.context["errors"] == {"since": spy.context["errors"]["since"]}
    assert "not a date or time" in spy.context["errors"]["since"]
    assert 'value="yesterday"' in bad.text
    api = await web.get("/events", params={"since": "yesterday"})
    assert api.status_code == 422
    assert api.json()["error"].startswith("invalid parameters")


async def test_event_data_is_escaped(web: httpx.AsyncClient) -> None:
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await post_events(
        web,
        [
            audit_event(
                user={"username": payload},
                userAgent=payload,
                objectRef={"resource": "pods", "namespace": "default", "name": "p"},
                requestObject={"metadata": {"name": payload}},
                responseObject={"metadata": {"name": payload}},
            )
        ],
    )
    event_id = (await web.get("/events")).json()["items"][0]["id"]
    for url in ("/", f"/changes/{event_id}", f"/changes/{event_id}?tab=raw"):
        text = (await web.get(url)).text
        assert "<script>alert" not in text
        assert "<img src=x" not in text
        assert "&lt;script&gt;alert(" in text


async def test_security_headers(web: httpx.AsyncClient) -> None:
    for url in ("/", "/events", "/static/app.css"):
        response = await web.get(url)
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "script-src 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    page = (await web.get("/")).text
    assert "<script>" not in page
    assert " style=" not in page
    assert "onclick" not in page


async def test_export_routes_match_events_and_neutralise_formulas(web: httpx.AsyncClient) -> None:
    users = ['=HYPERLINK("http://evil","x")', "+cmd", "-1+1", "@SUM(A1)", "plain"]
    await post_events(web, [audit_event(user={"username": u}) for u in users])
    await post_events(web, [audit_event(verb="get")])
    response = await web.get("/events/export.csv", params={"include_reads": "false"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="audit-events_include_reads-false_')
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    api = (await web.get("/events", params={"include_reads": "false"})).json()["items"]
    assert [r["audit_id"] for r in rows] == [item["audit_id"] for item in api]
    assert {r["user"] for r in rows} == {
        '\'=HYPERLINK("http://evil","x")',
        "'+cmd",
        "'-1+1",
        "'@SUM(A1)",
        "plain",
    }
    assert rows[0]["event_url"] == f"http://localhost/changes/{api[0]['id']}"
    ndjson = await web.get("/api/v1/events/export.ndjson")
    lines = ndjson.text.splitlines()
    assert len(lines) == 6
    assert ndjson.headers["content-type"] == "application/x-ndjson"
    empty = await web.get("/events/export.csv", params={"namespace": "none"})
    assert empty.content.decode("utf-8-sig").splitlines() == [",".join(rows[0].keys())]
