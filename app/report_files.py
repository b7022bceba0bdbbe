"""Write a change report to a file: html, csv, ndjson or a signed bundle.

Used by `audit-timeline report`, the /reports downloads and the report schedule.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import reports
from app.audit.bundle import BundleWriter
from app.report_key import load_signing_key
from app.settings import Settings
from app.web.templating import get_templates


def software_version() -> str:
    try:
        return version("audit-timeline")
    except PackageNotFoundError:
        return "unknown"


def render_html(changes: list[reports.ObjectChange], query: reports.ReportQuery) -> str:
    """A standalone HTML document of the report (the CLI's --format html)."""
    template = get_templates().env.get_template("reports/document.html")
    return template.render(changes=changes, query=query, now=datetime.now(UTC), limit=None)


async def write_report_file(
    session: AsyncSession,
    query: reports.ReportQuery,
    fmt: str,
    path: Path,
    *,
    settings: Settings,
    base_url: str = "",
) -> int:
    """Write the report as html, csv, ndjson or a signed bundle; return the object count."""
    count = 0
    if fmt == "bundle":
        manifest = await reports.write_bundle(
            session,
            query,
            BundleWriter(path),
            key=load_signing_key(settings),
            version=software_version(),
            base_url=base_url,
        )
        return int(manifest["row_count"])
    if fmt == "html":
        changes = [c async for c in reports.change_report(session, query)]
        await asyncio.to_thread(path.write_text, render_html(changes, query), encoding="utf-8")
        return len(changes)
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            out.write(reports.csv_header())
        async for change in reports.change_report(session, query):
            if fmt == "csv":
                out.write(reports.object_csv_line(change))
            else:
                out.write(json.dumps(reports.ndjson_record(change), ensure_ascii=False) + "\n")
            count += 1
    return count
