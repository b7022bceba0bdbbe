"""The dashboard in Debian's Chromium (Playwright) against a live uvicorn with the real fixtures.

Checks what the browser shows against GET /events with the same filters.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.builders import audit_event
from tests.conftest import requires_fixtures
from tests.web.conftest import SCREENSHOTS, LiveServer

pytestmark = [pytest.mark.browser, requires_fixtures]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(live_server: LiveServer) -> Iterator[Browser]:
    # After live_server: Playwright's sync API runs an event loop, and the server's set-up
    # (Alembic's asyncio.run) must not run inside it.
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1360, "height": 900}, accept_downloads=True
    )
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    yield page
    context.close()
    # CSP violations and script errors show up here.
    assert errors == []


def api_ids(server: LiveServer, params: list[tuple[str, str]], pages: int = 1) -> list[int]:
    """Event ids of the first pages of GET /events with these parameters."""
    ids: list[int] = []
    cursor: str | None = None
    with httpx.Client(base_url=server.url) as http:
        for _ in range(pages):
            query = params + ([("cursor", cursor)] if cursor else [])
            body = http.get("/events", params=query).json()
            ids += [item["id"] for item in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
    return ids


def dashboard_params(page: Page) -> list[tuple[str, str]]:
    """The page URL's filter, read as the dashboard reads it (changes only unless asked, one
    row per request unless every stage is asked for)."""
    params = parse_qsl(urlsplit(page.url).query)
    if not any(key == "include_reads" for key, _ in params):
        params.append(("include_reads", "false"))
    if not any(key == "per" for key, _ in params):
        params.append(("per", "request"))
    return params


def wait_until(page: Page, check: Callable[[], bool], what: str, timeout_ms: int = 10_000) -> None:
    """Poll from Python (the strict CSP refuses wait_for_function's string evaluation)."""
    for _ in range(timeout_ms // 50):
        if check():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_htmx(page: Page) -> None:
    busy = "!!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    wait_until(page, lambda: not page.evaluate(busy), "htmx to settle")


def open_picker(page: Page, facet: str) -> None:
    wait_for_htmx(page)
    details = page.locator(f"#p-{facet}")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    expect(page.locator(f"#f-{facet}")).to_be_visible()


def picker_values(page: Page, facet: str) -> list[str]:
    values = page.locator(f"#f-{facet} input[type=checkbox]").evaluate_all(
        "boxes => boxes.map(b => b.value)"
    )
    return [str(v) for v in values]


def checked_values(page: Page, facet: str) -> list[str]:
    values = page.locator(f"#f-{facet} input[type=checkbox]:checked").evaluate_all(
        "boxes => boxes.map(b => b.value)"
    )
    return [str(v) for v in values]


def toggle(page: Page, facet: str, value: str) -> None:
    """Tick or untick one value of a picker (the form is swapped after each change)."""
    open_picker(page, facet)
    page.locator(f"#f-{facet} input[type=checkbox][value='{value}']").click()


def wait_for_url_values(page: Page, key: str, values: list[str]) -> None:
    """Wait until the pushed URL holds exactly these values of key (in this order)."""
    wait_until(page, lambda: url_values(page, key) == values, f"{key}={values} in the URL")
    wait_for_htmx(page)


def url_values(page: Page, key: str) -> list[str]:
    return [v for k, v in parse_qsl(urlsplit(page.url).query) if k == key]


def row_ids(page: Page) -> list[int]:
    ids = page.locator("tr.event").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return [int(i) for i in ids]


@pytest.mark.parametrize("facet", ["resource", "namespace", "user", "verb"])
def test_filter_through_the_ui_matches_the_api(
    page: Page, live_server: LiveServer, facet: str
) -> None:
    page.goto("/?include_reads=true")
    open_picker(page, facet)
    # The second most frequent value: a real narrowing, not the whole list.
    value = picker_values(page, facet)[1]
    toggle(page, facet, value)
    wait_for_url_values(page, facet, [value])
    expect(page.locator(f"#f-{facet} input[value='{value}']")).to_be_checked()
    ids = row_ids(page)
    assert ids
    assert ids == api_ids(live_server, dashboard_params(page))
    if facet == "namespace":
        expect(page.locator("td.col-object .ns").first).to_have_text(value)


def test_default_view_is_changes_only_and_reads_switch(page: Page, live_server: LiveServer) -> None:
    page.goto("/")
    assert row_ids(page) == api_ids(live_server, [("include_reads", "false"), ("per", "request")])
    verbs = set(page.locator("tr.event td:nth-child(2)").all_inner_texts())
    assert verbs <= {"create", "update", "patch", "delete"}
    page.locator("#f-include-reads").check()
    expect(page).to_have_url(re.compile(r"include_reads=true"))
    expect(page.locator("tr.event td:nth-child(2)", has_text="get").first).to_be_visible()
    assert row_ids(page) == api_ids(live_server, [("include_reads", "true"), ("per", "request")])
    page.screenshot(path=str(SCREENSHOTS / "timeline.png"), full_page=False)


def test_scrolling_loads_the_next_page(page: Page, live_server: LiveServer) -> None:
    page.goto("/?include_reads=true")
    expect(page.locator("tr.event")).to_have_count(50)
    page.locator("tr.more a").last.scroll_into_view_if_needed()
    expect(page.locator("tr.event")).to_have_count(100)
    assert row_ids(page) == api_ids(
        live_server, [("include_reads", "true"), ("per", "request")], pages=2
    )


def test_histogram_bar_narrows_the_range(page: Page) -> None:
    page.goto("/?include_reads=true")
    before = len(row_ids(page))
    page.locator("#histogram a.bar-link").first.click()
    expect(page).to_have_url(re.compile(r"since=.*until="))
    expect(page.locator("#f-since")).not_to_have_value("")
    assert 0 < len(row_ids(page)) <= before


def find_patch_with_previous(server: LiveServer) -> dict[str, Any]:
    with httpx.Client(base_url=server.url) as http:
        items = http.get(
            "/events", params={"verb": "patch", "resource": "leases", "namespace": "kafka"}
        ).json()["items"]
    with_bodies = [item for item in items if item["level"] == "RequestResponse"]
    assert with_bodies, "fixture lease patch with bodies missing"
    return with_bodies[0]


def test_diff_history_and_back_forward(page: Page, live_server: LiveServer) -> None:
    event = find_patch_with_previous(live_server)
    page.goto("/?resource=leases&namespace=kafka&verb=patch")
    page.locator(f'tr.event[data-id="{event["id"]}"] a.open').click()
    expect(page).to_have_url(re.compile(rf"/changes/{event['id']}$"))
    expect(page.locator("h1.event-title")).to_contain_text("patch")
    # Request <-> response: both panes have lines, changed ones highlighted.
    for side in ("left", "right"):
        cells = page.locator(f"table.diff tr:not([hidden]) td.code.{side}:not(.pad)")
        expect(cells.first).to_be_visible()
    page.get_by_role("link", name="Previous version ↔ this").click()
    expect(page).to_have_url(re.compile(r"tab=previous"))
    changed = page.locator("table.diff td.code.chg mark")
    expect(changed.first).to_be_visible()
    assert page.locator("table.diff td.code.left.chg").count() > 0
    assert page.locator("table.diff td.code.right.chg").count() > 0
    expect(page.locator("th.pane-left a")).to_contain_text("Previous version")
    page.locator("#diff").scroll_into_view_if_needed()
    page.evaluate("document.getElementById('diff').scrollIntoView()")
    page.screenshot(path=str(SCREENSHOTS / "diff.png"), full_page=False)
    page.get_by_role("link", name=re.compile("^Raw JSON")).click()
    expect(page.locator("pre.raw")).to_contain_text('"auditID"')
    # Object history.
    page.locator("nav.crumbs a", has_text="History of").click()
    expect(page).to_have_url(
        re.compile(r"/objects/fixtures/namespaces/kafka/leases\.coordination\.k8s\.io/")
    )
    expect(page.locator("li.entry").first).to_be_visible()
    assert page.locator("li.entry").count() >= 2
    page.locator("details.version summary").first.click()
    expect(page.locator("details.version pre.yaml").first).to_contain_text("strimzi")
    page.screenshot(path=str(SCREENSHOTS / "object-history.png"), full_page=False)
    # Back and forward walk the same states.
    page.go_back()
    expect(page).to_have_url(re.compile(r"tab=raw"))
    expect(page.locator("pre.raw")).to_be_visible()
    page.go_back()
    expect(page).to_have_url(re.compile(r"tab=previous"))
    expect(page.locator("table.diff td.code.chg").first).to_be_visible()
    page.go_back()
    page.go_back()
    expect(page).to_have_url(re.compile(r"/\?resource=leases"))
    expect(page.locator("#f-resource input[value='leases']")).to_be_checked()
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"/changes/{event['id']}$"))


def test_csv_export_matches_events_row_for_row(page: Page, live_server: LiveServer) -> None:
    page.goto("/?include_reads=true")
    open_picker(page, "namespace")
    toggle(page, "namespace", picker_values(page, "namespace")[0])
    expect(page).to_have_url(re.compile(r"namespace="))
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("audit-events_")
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    params = [(k, v) for k, v in dashboard_params(page)] + [("limit", "1000")]
    with httpx.Client(base_url=live_server.url) as http:
        items = http.get("/events", params=params).json()["items"]
    assert len(rows) == len(items) > 0
    for row, item in zip(rows, items, strict=True):
        assert row["audit_id"] == item["audit_id"]
        assert row["verb"] == item["verb"]
        assert row["namespace"] == (item["namespace"] or "")
        assert row["event_url"].endswith(f"/changes/{item['id']}")


XSS = '<script>alert("xss")</script><img src=x onerror="alert(1)">'


def test_xss_payload_renders_as_text(page: Page, live_server: LiveServer) -> None:
    event = audit_event(
        user={"username": XSS},
        userAgent=XSS,
        objectRef={"resource": "configmaps", "namespace": XSS[:60], "name": XSS},
        requestObject={"metadata": {"name": XSS}, "data": {"x": XSS}},
        responseObject={"metadata": {"name": XSS}, "data": {"x": XSS}},
    )
    with httpx.Client(base_url=live_server.url) as http:
        response = http.post("/ingest", json=event, params={"cluster": "xss"})
        assert response.status_code == 200, response.text
        event_id = http.get("/events", params={"cluster": "xss"}).json()["items"][0]["id"]
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/?cluster=xss")
    expect(page.locator("tr.event .user").first).to_have_text(XSS)
    page.goto(f"/changes/{event_id}")
    expect(page.locator("dd.user")).to_have_text(XSS)
    expect(page.locator("dd.ua")).to_have_text(XSS)
    expect(page.locator("table.diff").first).to_contain_text('<script>alert("xss")</script>')
    page.goto(f"/changes/{event_id}?tab=raw")
    expect(page.locator("pre.raw")).to_contain_text("<img src=x")
    assert page.locator("img").count() == 0
    assert page.locator("main script").count() == 0
    assert dialogs == []


def test_follow_shows_new_events_and_pauses(page: Page, live_server: LiveServer) -> None:
    page.goto("/?cluster=follow")
    follow = page.locator("#follow")
    expect(follow).to_be_visible()
    follow.click()
    expect(follow).to_have_attribute("aria-pressed", "true")
    with httpx.Client(base_url=live_server.url) as http:
        body = audit_event(objectRef={"resource": "pods", "namespace": "live", "name": "new-pod"})
        assert http.post("/ingest", json=body, params={"cluster": "follow"}).status_code == 200
    expect(page.locator("tr.event", has_text="new-pod")).to_be_visible(timeout=12_000)
    follow.click()
    expect(follow).to_have_attribute("aria-pressed", "false")
    expect(follow).to_have_text("Follow live")


def test_narrow_window_and_keyboard(page: Page) -> None:
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto("/")
    expect(page.locator("th.col-ip")).to_be_hidden()
    page.locator("body").press("j")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "open"
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/changes/\d+"))


def test_follow_waits_while_reading_further_down(page: Page, live_server: LiveServer) -> None:
    page.set_viewport_size({"width": 1200, "height": 500})
    page.goto("/?include_reads=true")
    page.locator("#follow").click()
    page.mouse.wheel(0, 3000)
    page.wait_for_function("window.scrollY > 400")
    # The next refresh (every 5 s) sees the reader down the page and leaves the rows alone.
    expect(page.locator("#follow-status")).to_have_text(
        "Following: paused while you read further down", timeout=12_000
    )
    page.evaluate("window.scrollTo(0, 0)")
    expect(page.locator("#follow-status")).to_have_text(
        "Following: newest events every 5 s", timeout=12_000
    )


def test_coverage_and_change_report_pages(page: Page, live_server: LiveServer) -> None:
    # Coverage: the verdict table agrees with GET /api/v1/coverage; the window form swaps it.
    with httpx.Client(base_url=live_server.url) as http:
        api = http.get("/api/v1/coverage", params={"cluster": "fixtures"}).json()
    [cluster] = api["clusters"]
    red = [r for r in cluster["required"] if r["status"] == "red"]
    page.goto("/coverage?cluster=fixtures")
    expect(page.locator("article.cluster-coverage h2")).to_have_text("Cluster fixtures")
    expect(page.locator("table.coverage tr.cov-red")).to_have_count(len(red))
    page.select_option("select[name=window]", "7d")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"window=7d"))
    # The fixtures are years old: nothing in the last 7 days, every required pair red.
    expect(page.locator("table.coverage tr.cov-red")).to_have_count(len(cluster["required"]))
    # Reports: the form gives the objects of the window, linked to their history.
    page.goto("/reports")
    page.fill("input[name=cluster]", "fixtures")
    page.fill("input[name=since]", "2000-01-01T00:00:00Z")
    page.fill("input[name=until]", "2100-01-01T00:00:00Z")
    page.select_option("select[name=resource_group]", "rbac")
    page.get_by_role("button", name="Show report").click()
    expect(page).to_have_url(re.compile(r"resource_group=rbac"))
    expect(page.locator("li.report-object").first).to_be_visible()
    assert page.locator("li.report-object h3 a").first.get_attribute("href", timeout=5000)
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig"))))
    assert len(rows) == page.locator("li.report-object").count()
    assert {r["resource"] for r in rows} <= {"roles", "rolebindings", "clusterroles",
                                             "clusterrolebindings"}  # fmt: skip


REQUEST_VIEW = [("include_reads", "true"), ("per", "request")]


@pytest.mark.parametrize("facet", ["resource", "namespace", "user", "group", "verb", "cluster"])
def test_every_picker_changes_and_clears_after_another_filter(
    page: Page, live_server: LiveServer, facet: str
) -> None:
    # Another filter first (reads included), then this picker: pick, change, clear; the URL
    # holds each value once, the other filter survives, and back/forward walk the states.
    page.goto("/?include_reads=true")
    open_picker(page, facet)
    values = picker_values(page, facet)
    assert values, f"no {facet} values in the fixtures"
    first = values[0]
    toggle(page, facet, first)
    wait_for_url_values(page, facet, [first])
    expect(page.locator(f"#f-{facet} input[value='{first}']")).to_be_checked()
    assert url_values(page, "include_reads") == ["true"]
    assert row_ids(page) == api_ids(live_server, dashboard_params(page))
    if len(values) > 1:
        # Change: untick the first, tick another; the picker stays open between the two.
        second = values[1]
        toggle(page, facet, first)
        wait_for_url_values(page, facet, [])
        toggle(page, facet, second)
        wait_for_url_values(page, facet, [second])
        expect(page.locator(f"#f-{facet} input[value='{second}']")).to_be_checked()
        assert checked_values(page, facet) == [second]
    chosen = url_values(page, facet)
    # Clear ("Any …"): no value left, the other filter kept.
    page.locator(f"#p-{facet} a.picker-clear").click()
    wait_for_url_values(page, facet, [])
    assert url_values(page, "include_reads") == ["true"]
    assert checked_values(page, facet) == []
    expect(page.locator(f"#picked-{facet}")).to_have_text(re.compile("^Any "))
    assert row_ids(page) == api_ids(live_server, REQUEST_VIEW)
    # Back restores the chosen value, forward the cleared state.
    page.go_back()
    expect(page).to_have_url(re.compile(rf"[?&]{facet}="))
    assert url_values(page, facet) == chosen
    expect(page.locator(f"#f-{facet} input[value='{chosen[0]}']")).to_be_checked()
    page.go_forward()
    expect(page).not_to_have_url(re.compile(rf"[?&]{facet}="))
    wait_until(page, lambda: checked_values(page, facet) == [], "the cleared picker")


def test_single_value_pickers_change_and_clear(page: Page, live_server: LiveServer) -> None:
    page.goto("/?include_reads=true")
    for name, value in (("window", "30d"), ("status", "failure"), ("per", "stage")):
        page.locator(f"#f-{name}").select_option(value)
        wait_for_url_values(page, name, [value])
        expect(page.locator(f"#f-{name}")).to_have_value(value)
    assert url_values(page, "window") == ["30d"]
    assert url_values(page, "status") == ["failure"]
    page.locator("#f-status").select_option("")
    wait_for_url_values(page, "status", [])
    page.locator("#f-window").select_option("")
    wait_for_url_values(page, "window", [])
    assert url_values(page, "per") == ["stage"]
    assert url_values(page, "include_reads") == ["true"]
    assert row_ids(page) == api_ids(live_server, [("include_reads", "true"), ("per", "stage")])


def test_several_values_per_picker_and_search(page: Page, live_server: LiveServer) -> None:
    page.goto("/?include_reads=true")
    open_picker(page, "verb")
    verbs = [v for v in picker_values(page, "verb") if v in ("update", "patch", "delete", "get")]
    assert len(verbs) >= 3
    for n, verb in enumerate(verbs[:3]):
        toggle(page, "verb", verb)
        wait_until(page, lambda n=n: len(url_values(page, "verb")) == n + 1, "one more verb")
        expect(page.locator(f"#f-verb input[value='{verb}']")).to_be_checked()
    assert sorted(url_values(page, "verb")) == sorted(verbs[:3])
    shown = set(page.locator("tr.event td:nth-child(2)").all_inner_texts())
    assert shown <= set(verbs[:3])
    assert row_ids(page) == api_ids(live_server, dashboard_params(page))
    count = int(page.locator("#match-count").inner_text().replace(",", ""))
    with httpx.Client(base_url=live_server.url) as http:
        items = http.get("/events", params=[*dashboard_params(page), ("limit", "1000")]).json()
    assert count == len(items["items"])
    # A long picker has a search box that narrows its list without changing the filter.
    page.locator("body").click()
    open_picker(page, "user")
    search = page.locator("#p-user .picker-search")
    expect(search).to_be_visible()
    url = page.url
    users = picker_values(page, "user")
    needle = users[-1][-6:]
    search.fill(needle)
    visible = page.locator("#f-user li:not([hidden]) input").evaluate_all(
        "boxes => boxes.map(b => b.value)"
    )
    assert visible == [u for u in users if needle.lower() in u.lower()]
    assert page.url == url
    search.press("Enter")
    page.wait_for_timeout(300)
    assert page.url == url


def test_kube_system_service_accounts_in_two_clicks(page: Page, live_server: LiveServer) -> None:
    page.goto("/")
    page.get_by_role("link", name="kube-system service accounts, last 24 h").click()
    wait_for_url_values(page, "user", ["system:serviceaccount:kube-system:*"])
    expect(page.locator("#picked-user")).to_have_text("system:serviceaccount:kube-system:*")
    # The window can be widened with one more click (the fixtures are older than 24 h).
    page.locator("#f-window").select_option("")
    wait_for_url_values(page, "window", [])
    assert url_values(page, "user") == ["system:serviceaccount:kube-system:*"]
    users = set(page.locator("tr.event .user").all_inner_texts())
    assert users
    assert all(u.startswith("system:serviceaccount:kube-system:") for u in users)
    assert row_ids(page) == api_ids(live_server, dashboard_params(page))


def fixture_day(server: LiveServer) -> datetime:
    with httpx.Client(base_url=server.url) as http:
        item = http.get("/events", params={"per": "request", "cluster": "fixtures"}).json()
    return datetime.fromisoformat(item["items"][0]["stage_at"])


def test_custom_range_typed_three_ways_and_a_wrong_one(page: Page, live_server: LiveServer) -> None:
    newest = fixture_day(live_server).astimezone(UTC)
    day = newest.strftime("%Y-%m-%d")
    page.goto("/?include_reads=true")
    page.locator("details.custom-range summary").click()
    typed = [
        (day, newest.replace(hour=0, minute=0, second=0, microsecond=0)),
        (newest.strftime("%Y-%m-%d %H:%M"), newest.replace(second=0, microsecond=0)),
        (newest.strftime("%Y-%m-%dT%H:%M:%SZ"), newest.replace(microsecond=0)),
    ]
    for text, expected in typed:
        page.locator("#f-since").fill(text)
        page.locator("#f-since").press("Enter")
        expect(page).to_have_url(re.compile(r"since="))
        expect(page.locator("#f-since")).to_have_value(expected.strftime("%Y-%m-%d %H:%M:%S"))
        expect(page.locator(".field-error")).to_have_count(0)
        rows = row_ids(page)
        assert rows
        assert rows == api_ids(live_server, dashboard_params(page))
    # A wrong value: said beside the field, the rest of the page keeps working.
    page.locator("#f-since").fill("yesterday")
    page.locator("#f-since").press("Enter")
    expect(page.locator("#e-since")).to_contain_text("not a date or time")
    expect(page.locator("#f-since")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("tr.event").first).to_be_visible()
    # A reload of that URL (or a shared link) is the same usable page, not an error page.
    page.reload()
    expect(page.locator("#e-since")).to_contain_text("not a date or time")
    expect(page.locator("tr.event").first).to_be_visible()
    expect(page.locator("#toasts .toast")).to_have_count(0)
    # Fixed: the error goes away.
    page.locator("#f-since").fill(day)
    page.locator("#f-since").press("Enter")
    expect(page.locator("#e-since")).to_have_count(0)
    expect(page.locator("#f-since")).to_have_value(f"{day} 00:00:00")
    page.go_back()
    expect(page.locator("#e-since")).to_be_visible()


def test_error_toast_goes_once_the_next_request_works(page: Page) -> None:
    page.goto("/?include_reads=true")
    page.evaluate(
        "htmx.ajax('GET', '/changes/424242424242', {target: '#results', swap: 'outerHTML'})"
    )
    expect(page.locator("#toasts .toast")).to_have_count(1)
    page.locator("#f-window").select_option("30d")
    expect(page).to_have_url(re.compile(r"window=30d"))
    expect(page.locator("#toasts .toast")).to_have_count(0)


def test_rows_show_time_of_day_and_stages(page: Page) -> None:
    page.goto("/?include_reads=true")
    first = page.locator("tr.event").first
    expect(first.locator("td.col-time time")).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    )
    expect(first.locator("td.col-time small.age")).to_have_text(re.compile(r"ago|just now|\d"))
    expect(first.locator("td.col-stages .stage.shown")).to_have_count(1)
    # Resource names are never broken inside a word: each stays on one line, also when the
    # window is narrow.
    page.set_viewport_size({"width": 900, "height": 800})
    wrapped = page.locator("td.col-resource").evaluate_all(
        """cells => cells.filter(c => {
            const range = document.createRange();
            range.selectNodeContents(c);
            const size = parseFloat(getComputedStyle(c).fontSize);
            return range.getBoundingClientRect().height > 1.8 * size;
        }).map(c => c.textContent)"""
    )
    assert wrapped == []


def test_pickers_work_without_javascript(browser: Browser, live_server: LiveServer) -> None:
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/?include_reads=true")
        page.locator("#p-verb summary").click()
        verbs = picker_values(page, "verb")[:2]
        for verb in verbs:
            page.locator(f"#f-verb input[value='{verb}']").check()
        page.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"verb="))
        assert sorted(url_values(page, "verb")) == sorted(verbs)
        assert url_values(page, "include_reads") == ["true"]
        assert row_ids(page) == api_ids(live_server, dashboard_params(page))
        page.locator("#p-verb summary").click()
        page.locator("#p-verb a.picker-clear").click()
        expect(page).not_to_have_url(re.compile(r"verb="))
        assert url_values(page, "include_reads") == ["true"]
    finally:
        context.close()
