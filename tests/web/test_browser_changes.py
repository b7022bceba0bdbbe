"""Truthful change views in Debian's Chromium: a rotated secret, an unknown result, reads folded,
diff cells in regular weight, the default tab of an update."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.builders import audit_event, secret_event
from tests.conftest import requires_fixtures
from tests.web.conftest import LiveServer

# The shared Chromium fixtures (test names below take `page`, hence F811).
from tests.web.test_browser import browser, page  # noqa: F401

pytestmark = [pytest.mark.browser, requires_fixtures]

CLUSTER = "truth"
CM_REF = {"resource": "configmaps", "namespace": "shop", "name": "app", "apiVersion": "v1"}
OK = {"metadata": {}, "code": 200}


def at(minute: int) -> dict[str, str]:
    stamp = f"2026-11-21T09:{minute:02d}:00.000000Z"
    return {"requestReceivedTimestamp": stamp, "stageTimestamp": stamp}


def ingest(server: LiveServer, events: list[dict[str, object]]) -> dict[str, int]:
    with httpx.Client(base_url=server.url) as http:
        body = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}
        response = http.post("/ingest", json=body, params={"cluster": CLUSTER})
        assert response.json()["stored"] == len(events), response.text
        items = http.get(
            "/events", params={"cluster": CLUSTER, "include_reads": "true", "limit": 100}
        ).json()["items"]
    return {item["audit_id"]: item["id"] for item in items}


def test_rotated_secret_reads_as_changed(page: Page, live_server: LiveServer) -> None:  # noqa: F811
    ref = {"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"}
    create = secret_event({"password": "b2xk", "user": "YQ=="}, objectRef=ref, **at(0))
    rotate = secret_event(
        {"password": "bmV3", "user": "YQ=="},
        objectRef=ref,
        verb="update",
        responseStatus=OK,
        **at(5),
    )
    ids = ingest(live_server, [create, rotate])

    page.goto(f"/changes/{ids[rotate['auditID']]}")

    expect(page.locator("a.tab.active")).to_have_text("Previous version ↔ this")
    expect(page.locator("#outcome")).to_contain_text("data.password: changed (redacted)")
    expect(page.locator(".counts")).to_have_text("+0 −0 ~1 lines")
    changed = page.locator("table.diff tr.row-changed")
    expect(changed).to_have_count(1)
    expect(changed.locator("td.code.left")).to_have_text("  password: redacted")
    expect(changed.locator("td.code.right")).to_have_text("  password: redacted (changed)")
    expect(changed.locator("td.code.right mark")).to_be_visible()
    unchanged = page.locator("table.diff tr.row-equal td.code.right", has_text="user:")
    expect(unchanged).to_have_text("  user: redacted (unchanged)")
    weight = page.locator("table.diff td.code.right").first.evaluate(
        "cell => getComputedStyle(cell).fontWeight"
    )
    assert weight == "400"

    page.locator("nav.crumbs a", has_text="History of").click()
    expect(page).to_have_url(re.compile(r"/objects/truth/namespaces/shop/secrets/db$"))
    card = page.locator("li.entry").first
    expect(card.locator("p.summary")).to_have_text("Changed: data.password: changed (redacted)")
    diff = card.locator("details.change")
    expect(diff.locator("table.diff")).to_be_hidden()
    diff.locator("summary").click()
    expect(diff.locator("tr.row-changed td.code.right")).to_have_text(
        "  password: redacted (changed)"
    )


def test_unknown_result_and_folded_reads_in_history(
    page: Page,  # noqa: F811
    live_server: LiveServer,
) -> None:
    body = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "app"},
        "data": {"A": "1"},
    }
    create = audit_event(objectRef=CM_REF, requestObject=body, responseObject=body, **at(0))
    meta = audit_event(
        objectRef=CM_REF, verb="update", level="Metadata", responseStatus=OK, **at(5)
    )
    reads = [
        audit_event(
            objectRef=CM_REF,
            verb="get",
            level="Metadata",
            responseStatus=OK,
            user={"username": name},
            **at(10 + i),
        )
        for i, name in enumerate(["carol", "dave"])
    ]
    ids = ingest(live_server, [create, meta, *reads])

    page.goto("/objects/truth/namespaces/shop/configmaps/app")

    expect(page.locator("li.entry.reads")).to_have_text("2 reads by dave, carol (no change)")
    unknown = page.locator(f"#event-{ids[meta['auditID']]}")
    expect(unknown.locator("p.summary")).to_contain_text("Result not recorded:")
    expect(unknown).not_to_contain_text("No change")
    page.locator("#reads-toggle").click()
    expect(page).to_have_url(re.compile(r"reads=show"))
    expect(page.locator("li.entry.outcome-read")).to_have_count(2)
    page.go_back()
    expect(page.locator("li.entry.reads")).to_have_count(1)

    page.goto(f"/changes/{ids[meta['auditID']]}")
    expect(page.locator("#effect")).to_have_text("Result not recorded")
    expect(page.locator("#outcome")).to_contain_text("Metadata level")
    expect(page.locator(".counts")).to_have_count(0)
