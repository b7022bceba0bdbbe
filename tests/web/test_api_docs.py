"""/docs renders Swagger UI from the app's own files, with every non-loopback request blocked
in the browser and the strict Content-Security-Policy in force (no violation reported)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Route, sync_playwright

from app.web.security import CONTENT_SECURITY_POLICY
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser


def test_docs_render_offline_under_the_strict_csp(open_server: tuple[str, str]) -> None:
    url, _ = open_server
    response = httpx.get(f"{url}/docs")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "cdn" not in response.text.lower()
    blocked: list[str] = []
    problems: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{url}/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            operations = page.locator(".opblock-summary-path").all_text_contents()
            title = page.locator(".info .title").text_content() or ""
        finally:
            browser.close()
    assert "/ingest" in operations
    assert "/api/v1/events" in operations
    assert "audit-timeline" in title
    assert blocked == []
    assert problems == []
