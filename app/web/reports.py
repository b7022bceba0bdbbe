"""/reports: the change report as a page, CSV, NDJSON or signed bundle, and the scheduled bundles.

The report itself is app/audit/reports.py; files are written by app/report_files.py.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import Field, field_validator
from starlette.background import BackgroundTask

from app.access import require
from app.audit import reports
from app.audit.schemas import TimeBounds
from app.db import SessionDep
from app.errors import InvalidFilter, NotFound
from app.report_files import write_report_file
from app.report_schedule import list_scheduled, scheduled_path
from app.settings import Settings
from app.web.htmx import render

router = APIRouter(include_in_schema=False)
# The HTML page lists this many objects; the files hold them all.
HTML_LIMIT = 500


class ReportForm(TimeBounds):
    """The /reports form: cluster and window required to produce a report."""

    cluster: str | None = Field(default=None, max_length=253)
    namespace: str | None = Field(default=None, max_length=253)
    resource_group: Literal["network-policy", "rbac", "workload-identity"] | None = None

    @field_validator("cluster", "namespace", "resource_group", mode="before")
    @classmethod
    def _blank_text(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cluster", "namespace")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    def query(self) -> reports.ReportQuery | None:
        if self.cluster is None or self.since is None or self.until is None:
            return None
        return reports.ReportQuery(
            self.cluster, self.since, self.until, self.namespace, self.resource_group
        )


@router.get("/reports", response_class=HTMLResponse, name="reports")
async def reports_page(
    request: Request, form: Annotated[ReportForm, Query()], session: SessionDep
) -> HTMLResponse:
    query = form.query()
    changes: list[reports.ObjectChange] = []
    is_truncated = False
    if query is not None:
        async for change in reports.change_report(session, query):
            if len(changes) == HTML_LIMIT:
                is_truncated = True
                break
            changes.append(change)
    params = request.url.query
    return render(
        request,
        "reports/page.html",
        partial="reports/_report.html",
        form=form,
        query=query,
        changes=changes,
        is_truncated=is_truncated,
        limit=HTML_LIMIT,
        params=params,
        groups=list(reports.RESOURCE_GROUPS),
        scheduled=list_scheduled(request.app.state.settings),
        schedule=request.app.state.settings.report_schedule,
        now=datetime.now(UTC),
    )


def _required(form: ReportForm) -> reports.ReportQuery:
    query = form.query()
    if query is None:
        raise InvalidFilter("cluster, since and until are required for a report")
    return query


@router.get("/reports/report.{fmt}", dependencies=[Depends(require("exporter"))])
async def report_file(
    request: Request,
    fmt: Literal["csv", "ndjson", "zip"],
    form: Annotated[ReportForm, Query()],
    session: SessionDep,
) -> FileResponse:
    """The report as a file; zip is the signed bundle (verify with `audit-timeline verify`)."""
    query = _required(form)
    settings: Settings = request.app.state.settings
    handle, name = tempfile.mkstemp(prefix="report-", suffix=f".{fmt}")
    os.close(handle)
    path = Path(name)
    try:
        await write_report_file(
            session,
            query,
            {"zip": "bundle"}.get(fmt, fmt),
            path,
            settings=settings,
            base_url=str(request.base_url),
        )
    except BaseException:
        # The response's background task removes the file only once it is sent.
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    media = {"csv": "text/csv", "ndjson": "application/x-ndjson", "zip": "application/zip"}
    return FileResponse(
        path,
        media_type=media[fmt],
        filename=f"change-report-{stamp}.{fmt}",
        background=BackgroundTask(path.unlink),
    )


@router.get("/reports/scheduled/{name}", dependencies=[Depends(require("exporter"))])
async def scheduled_file(request: Request, name: str) -> FileResponse:
    """A kept scheduled bundle (names as listed on /reports only)."""
    path = scheduled_path(request.app.state.settings, name)
    if path is None:
        raise NotFound(f"no scheduled report named {name[:100]!r}")
    return FileResponse(path, media_type="application/zip", filename=name)
