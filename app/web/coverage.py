"""HTML route /coverage: the coverage report of app/audit/coverage.py as a page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.audit import coverage
from app.audit.coverage import SHOWN_LEVELS, CoverageFilter
from app.db import SessionDep
from app.web.htmx import render

router = APIRouter(include_in_schema=False)

PRESETS = (
    ("", "All time"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
)


@router.get("/coverage", response_class=HTMLResponse, name="coverage")
async def coverage_page(
    request: Request,
    f: Annotated[CoverageFilter, Query()],
    session: SessionDep,
) -> HTMLResponse:
    now = datetime.now(UTC)
    report = await coverage.coverage(
        session, f, now=now, stale_after=request.app.state.settings.coverage_stale_after
    )
    return render(
        request,
        "coverage/page.html",
        partial="coverage/_report.html",
        report=report,
        filters=f,
        window=f.window or "",
        presets=PRESETS,
        levels=SHOWN_LEVELS,
        now=now,
    )
