"""Render a full page or, for htmx, its partial from one route; set Vary: HX-Request.

History restores (HX-History-Restore-Request) get the full page, as htmx expects.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from app.web.templating import get_templates


def is_partial_request(request: Request) -> bool:
    """True for an htmx request that swaps part of a page (not a history restore)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render(
    request: Request,
    page: str,
    *,
    partial: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page template, or the partial when htmx asks for part of the page."""
    name = partial if partial is not None and is_partial_request(request) else page
    response = get_templates().TemplateResponse(
        request, name, context, status_code=status_code, headers=headers
    )
    # Caches (and the browser's back button) must keep page and partial apart.
    response.headers["Vary"] = "HX-Request"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def render_error(request: Request, status_code: int, message: str) -> HTMLResponse:
    """An error page, or for htmx a toast swapped into #toasts with 200 (htmx drops 4xx/5xx)."""
    if is_partial_request(request):
        return render(
            request,
            "_toast.html",
            message=message,
            status=status_code,
            headers={"HX-Retarget": "#toasts", "HX-Reswap": "innerHTML"},
        )
    return render(
        request, "errors/error.html", status_code=status_code, message=message, status=status_code
    )


_WEB_PREFIXES = ("/changes/", "/objects/", "/coverage", "/reports")
_NON_WEB_PREFIXES = (
    "/api/",
    "/events",
    "/ingest",
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/static/",
)


def wants_html(request: Request) -> bool:
    """True for dashboard URLs (and unknown URLs asked for by a browser): errors as pages."""
    path = request.url.path
    if path == "/" or path.startswith(_WEB_PREFIXES):
        return True
    if path.startswith(_NON_WEB_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")
