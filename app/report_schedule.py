"""Scheduled change reports: a signed bundle per cluster for each finished day or week, kept
under DATA_DIR/reports and listed on /reports (as Calico schedules its compliance reports).

Runs as a background task of `serve` when REPORT_SCHEDULE is set. Each replica with its own
DATA_DIR keeps its own copies; a bundle that exists is not produced again.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit.coverage import clusters_seen
from app.audit.reports import ReportQuery
from app.report_files import write_report_file
from app.settings import Settings

logger = logging.getLogger(__name__)

REPORTS_DIR = "reports"
_NAME_RE = re.compile(r"^change-report-[A-Za-z0-9._:-]+-\d{8}-\d{8}\.zip$")


@dataclass(frozen=True)
class ScheduledReport:
    name: str
    size: int
    produced_at: datetime


def reports_dir(settings: Settings) -> Path:
    return settings.data_dir / REPORTS_DIR


def last_period(now: datetime, schedule: str) -> tuple[datetime, datetime]:
    """The last finished day (UTC midnight to midnight) or ISO week (Monday to Monday)."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if schedule == "daily":
        return today - timedelta(days=1), today
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(days=7), monday


def bundle_name(cluster: str, since: datetime, until: datetime) -> str:
    return f"change-report-{cluster}-{since:%Y%m%d}-{until:%Y%m%d}.zip"


def list_scheduled(settings: Settings) -> list[ScheduledReport]:
    """The kept bundles, newest first."""
    folder = reports_dir(settings)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        if _NAME_RE.match(path.name) and path.is_file():
            stat = path.stat()
            found.append(
                ScheduledReport(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
            )
    return sorted(found, key=lambda r: (r.produced_at, r.name), reverse=True)


def scheduled_path(settings: Settings, name: str) -> Path | None:
    """The kept bundle of that name, if it is one (never a path outside the folder)."""
    if not _NAME_RE.match(name):
        return None
    path = reports_dir(settings) / name
    return path if path.is_file() else None


async def run_due(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> list[Path]:
    """Produce the bundles of the last finished period that are not kept yet."""
    schedule = settings.report_schedule
    if schedule is None:
        return []
    since, until = last_period(now, schedule)
    folder = reports_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # another `serve` worker on this DATA_DIR is producing them right now
        return await _produce(sessionmaker, settings, folder, since=since, until=until)


async def _produce(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    folder: Path,
    *,
    since: datetime,
    until: datetime,
) -> list[Path]:
    async with sessionmaker() as session:
        clusters = await clusters_seen(session)
    made = []
    for cluster in clusters:
        target = folder / bundle_name(cluster, since, until)
        if target.exists():
            continue
        tmp = target.with_suffix(".partial")
        query = ReportQuery(cluster, since, until, None, settings.report_schedule_resource_group)
        async with sessionmaker() as session, session.begin():
            rows = await write_report_file(session, query, "bundle", tmp, settings=settings)
        tmp.rename(target)
        logger.info(
            "reports.scheduled", extra={"cluster": cluster, "file": target.name, "rows": rows}
        )
        made.append(target)
    return made


class ReportScheduler:
    """Checks every REPORT_SCHEDULE_CHECK whether a period has finished, until stopped."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(sessionmaker, settings), name="reports")

    async def _run(
        self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        while not self._stop.is_set():
            try:
                await run_due(sessionmaker, settings, now=datetime.now(UTC))
            except Exception:
                # The next check retries; the web app keeps serving meanwhile.
                logger.exception("reports.schedule_failed")
            with suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.wait(), settings.report_schedule_check.total_seconds()
                )

    async def stop(self) -> None:
        self._stop.set()
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
