"""Web pages cannot forge events or read the trail of an open (loopback, no token) server.

The page-based attacks run in Debian's Chromium: a page served from another loopback origin
(127.0.0.2) posts events with a no-cors text/plain fetch, a typeless Blob and an auto-submitted
text/plain form; nothing may be stored. A foreign Host (the precondition of a DNS-rebinding
read) is refused on the events API and the exports.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from app.main import create_app
from app.web.hosts import HostPolicy
from tests.builders import audit_event
from tests.conftest import make_settings, query_all
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

FORGED = "forged-by-a-web-page"


def attacker_page(target: str) -> str:
    event = json.dumps(audit_event(auditID=FORGED, verb="delete"))
    # A text/plain form sends `name=value`: the name carries the JSON up to a string that the
    # value closes, so the body is one valid Event.
    name, value = event[:-2] + ', "pad": "', '"}'
    return f"""<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="{target}/ingest?cluster=forged">
<input name='{name.replace("'", "&#39;")}' value='{value}'></form>
<script>
const body = {json.dumps(event)};
Promise.allSettled([
  fetch("{target}/ingest", {{method: "POST", mode: "no-cors",
    headers: {{"Content-Type": "text/plain"}}, body}}),
  fetch("{target}/ingest", {{method: "POST", mode: "no-cors", body: new Blob([body])}}),
  fetch("{target}/ingest?cluster=forged", {{method: "POST", mode: "no-cors",
    headers: {{"Content-Type": "application/x-www-form-urlencoded"}}, body}}),
]).then(() => {{ document.title = "sent"; document.getElementById("f").submit(); }});
</script></body></html>"""


@pytest.fixture(scope="module")
def attacker(open_server: tuple[str, str]) -> Iterator[str]:
    """A page on another origin (127.0.0.2, another port) that attacks the open server."""
    html = attacker_page(open_server[0]).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.browser
def test_a_web_page_cannot_post_events(open_server: tuple[str, str], attacker: str) -> None:
    url, database_url = open_server
    assert CHROMIUM.exists(), "Debian's chromium is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            with page.expect_navigation(url=f"{url}/ingest?cluster=forged", timeout=20_000):
                page.goto(attacker)
            answer = page.text_content("body") or ""
        finally:
            browser.close()
    # The form's POST landed on the app, which refused it as cross-origin.
    assert "cross-origin POST refused" in answer, answer
    stored = query_all(database_url, "SELECT count(*) FROM audit_event WHERE audit_id = %s",
                       (FORGED,))  # fmt: skip
    assert stored == [(0,)]
    # The same event from an API client (no Origin, JSON) is stored: the attack was well formed.
    event = audit_event(auditID=FORGED, verb="delete")
    response = httpx.post(f"{url}/ingest", json=event)
    assert response.status_code == 200, response.text
    assert query_all(database_url, "SELECT count(*) FROM audit_event") == [(1,)]


def test_attacks_without_a_browser_origin_are_refused_by_content_type(
    open_server: tuple[str, str],
) -> None:
    """Even without an Origin header (older browsers, plug-ins), text/plain, form and typeless
    bodies get 415 naming what is accepted."""
    url, _ = open_server
    body = json.dumps(audit_event(auditID="typeless"))
    for headers in ({"content-type": "text/plain"}, {"content-type": "multipart/form-data"}, {}):
        response = httpx.post(f"{url}/ingest", content=body, headers=headers)
        assert response.status_code == 415, headers
        assert "application/json, application/x-ndjson" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/events", "/events/export.csv", "/api/v1/events/export.ndjson", "/", "/metrics"],
)
def test_foreign_host_is_refused(open_server: tuple[str, str], path: str) -> None:
    url, _ = open_server
    response = httpx.get(f"{url}{path}", headers={"host": "attacker.example"})
    assert response.status_code == 400
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "attacker.example" in response.json()["error"]
    assert "AUDIT_TIMELINE_ALLOWED_HOSTS" in response.json()["error"]
    for host in ("localhost", f"localhost:{url.rsplit(':', 1)[1]}", "127.0.0.1", "[::1]:80"):
        assert httpx.get(f"{url}{path}", headers={"host": host}).status_code == 200, host


def test_probes_answer_whatever_the_host(open_server: tuple[str, str]) -> None:
    url, _ = open_server
    for path in ("/healthz", "/readyz"):
        assert httpx.get(f"{url}{path}", headers={"host": "10.1.2.3:8000"}).status_code == 200


def test_host_policy_patterns() -> None:
    anything = HostPolicy(["*"], is_loopback_bind=True)
    assert anything.allows("evil.example")
    sub = HostPolicy(["*.example.org", "audit.internal"], is_loopback_bind=False)
    assert [sub.allows(h) for h in ("a.example.org", "example.org", "audit.internal", "x")] == [
        True, False, True, False
    ]  # fmt: skip
    off_loopback = HostPolicy([], is_loopback_bind=False)
    assert not off_loopback.is_checked
    loopback = HostPolicy([], is_loopback_bind=True)
    assert [loopback.allows(h) for h in ("localhost", "127.9.9.9", "::1", "127.0.0.1.nip.io")] == [
        True, True, True, False
    ]  # fmt: skip


def test_foreign_host_may_post_no_event(open_server: tuple[str, str]) -> None:
    url, database_url = open_server
    response = httpx.post(
        f"{url}/ingest", json=audit_event(auditID="rebound"), headers={"host": "attacker.example"}
    )
    assert response.status_code == 400
    rows = query_all(database_url, "SELECT count(*) FROM audit_event WHERE audit_id = 'rebound'")
    assert rows == [(0,)]


def test_allowed_hosts_setting(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, host="0.0.0.0", allowed_hosts="*.example.org")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)

    async def statuses() -> list[int]:
        async with httpx.AsyncClient(transport=transport) as http:
            return [
                (await http.get(f"http://{host}/openapi.json")).status_code
                for host in ("audit.example.org", "localhost", "evil.example")
            ]

    assert asyncio.run(statuses()) == [200, 400, 400]


def test_origin_must_be_this_server_or_an_allowed_host(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, host="0.0.0.0", allowed_hosts="audit.example")
    transport = httpx.ASGITransport(app=create_app(settings))
    origins = ["https://audit.example", "http://audit.example", "null", "https://evil.example"]

    async def statuses() -> list[int]:
        found = []
        async with httpx.AsyncClient(transport=transport) as http:
            for origin in origins:
                headers = {"content-type": "application/json", "origin": origin}
                # Off loopback without ingest tokens, an Origin that gets through meets the
                # ingest authentication (401); a refused one is 403 before it.
                response = await http.post("http://audit.example/ingest", headers=headers)
                found.append(response.status_code)
        return found

    assert asyncio.run(statuses()) == [401, 401, 403, 403]


def test_a_wildcard_allowed_host_trusts_no_origin(database_url: str, tmp_path: Path) -> None:
    # ALLOWED_HOSTS=* answers any Host name, but a foreign page's Origin stays refused.
    settings = make_settings(database_url, tmp_path, host="0.0.0.0", allowed_hosts="*")
    transport = httpx.ASGITransport(app=create_app(settings))

    async def statuses() -> list[int]:
        async with httpx.AsyncClient(transport=transport) as http:
            return [
                (
                    await http.post(
                        "http://audit.example/ingest",
                        headers={"content-type": "application/json", "origin": origin},
                    )
                ).status_code
                for origin in ("http://audit.example", "https://evil.example")
            ]

    assert asyncio.run(statuses()) == [401, 403]
