"""Live coverage: what each cluster's API server actually sends, against what is required.

Reads the hourly summary (coverage_hourly, kept at insert time by a trigger) — never the
events — so a window over tens of millions of events costs a few thousand summary rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import CoverageHourly
from app.audit.normalize import canonical_group
from app.audit.policy import CALICO_REQUIREMENTS, LEVELS, Requirement
from app.audit.schemas import TimeBounds

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
SHOWN_LEVELS = ("Metadata", "Request", "RequestResponse")
_BODY_VERBS = ("create", "update", "patch")
Status = Literal["ok", "red", "amber", "seen"]


class CoverageFilter(TimeBounds):
    """Which clusters and which window; the summary is hourly, so bounds round out to hours."""

    cluster: list[str] = Field(default_factory=list, max_length=50)
    since: AwareDatetime | None = Field(
        default=None, description="RFC 3339 (rounded down to the hour)"
    )
    until: AwareDatetime | None = Field(
        default=None, description="RFC 3339, exclusive (rounded up to the hour)"
    )
    window: Literal["24h", "7d", "30d"] | None = Field(
        default=None, description="Relative window ending now; combines with since/until"
    )

    @field_validator("cluster")
    @classmethod
    def _clusters(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values if v and v.strip()]
        if any(len(v) > 253 or "\x00" in v for v in cleaned):
            raise ValueError("a cluster name is at most 253 characters, without NUL")
        return cleaned

    @field_validator("window", mode="before")
    @classmethod
    def _no_window(cls, value: object) -> object:
        return None if value == "" else value


class CoverageRow(BaseModel):
    """One (group, resource, subresource, verb) of one cluster in the window."""

    group: str = Field(
        description='API group ("" for core; extensions NetworkPolicy counts as networking.k8s.io)'
    )
    resource: str = Field(description='"" for non-resource URLs (/healthz, /version, ...)')
    subresource: str
    verb: str
    requests: int = Field(description="Requests with a final stage (ResponseComplete or Panic)")
    by_level: dict[str, int] = Field(description="Requests per level (None is never sent)")
    request_bodies: int
    response_bodies: int
    other_stages: int = Field(description="RequestReceived/ResponseStarted stages (not requests)")
    last_seen_at: datetime | None
    sources: list[str] = Field(description="Ways in: webhook, file, elasticsearch")
    groups_seen: list[str] = Field(description="API groups the requests came through")
    required_level: str | None = None
    status: Status = Field(description="red, amber, ok for requirements; seen otherwise")
    reasons: list[str] = Field(default_factory=list)


class ClusterCoverage(BaseModel):
    cluster: str
    last_seen_at: datetime | None
    is_stale: bool
    required: list[CoverageRow]
    seen: list[CoverageRow]


class CoverageReport(BaseModel):
    since: datetime | None = Field(description="The window as read (whole hours)")
    until: datetime | None
    stale_after_seconds: int
    clusters: list[ClusterCoverage]


@dataclass
class _Acc:
    by_level: dict[str, int] = field(default_factory=dict)
    request_bodies: int = 0
    response_bodies: int = 0
    other_stages: int = 0
    last_seen_at: datetime | None = None
    sources: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)


def _hour_floor(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _hour_ceil(value: datetime) -> datetime:
    floor = _hour_floor(value)
    if floor == value or floor.year == 9999 and floor.month == 12 and floor.day == 31:
        # The last hour datetime can hold: rounding up would overflow; nothing lies beyond.
        return floor if floor == value else floor.replace(minute=59, second=59, microsecond=999999)
    return floor + timedelta(hours=1)


def required_pairs(requirements: Sequence[Requirement]) -> list[Requirement]:
    """Requirements by canonical group (NetworkPolicy in extensions is the same resource)."""
    best: dict[tuple[str, str, str], Requirement] = {}
    for req in requirements:
        group = canonical_group(req.resource, req.group)
        key = (group, req.resource, req.verb)
        if key not in best or LEVELS.index(req.level) > LEVELS.index(best[key].level):
            best[key] = Requirement(group, req.resource, req.verb, req.level)
    return list(best.values())


async def coverage(
    session: AsyncSession,
    f: CoverageFilter,
    *,
    now: datetime,
    stale_after: timedelta,
    requirements: Sequence[Requirement] = CALICO_REQUIREMENTS.requirements,
) -> CoverageReport:
    """Per cluster: every required (resource, verb) with its verdict, and everything seen."""
    lower = [b for b in (f.since, now - WINDOWS[f.window] if f.window else None) if b]
    since = _hour_floor(max(lower)) if lower else None
    until = _hour_ceil(f.until) if f.until else None
    c = CoverageHourly
    stmt = select(
        c.cluster,
        c.api_group,
        c.resource,
        c.subresource,
        c.verb,
        c.level,
        c.source,
        func.sum(c.requests),
        func.sum(c.request_bodies),
        func.sum(c.response_bodies),
        func.sum(c.other_stages),
        func.max(c.last_seen_at),
    ).group_by(c.cluster, c.api_group, c.resource, c.subresource, c.verb, c.level, c.source)
    if f.cluster:
        stmt = stmt.where(c.cluster.in_(f.cluster))
    if since is not None:
        stmt = stmt.where(c.hour >= since)
    if until is not None:
        stmt = stmt.where(c.hour < until)
    clusters: dict[str, dict[tuple[str, str, str, str], _Acc]] = {}
    for row in (await session.execute(stmt)).all():
        cluster, group, resource, sub, verb, level, source = row[:7]
        requests, req_bodies, resp_bodies, others, last = row[7:]
        key = (canonical_group(resource, group), resource, sub, verb)
        acc = clusters.setdefault(cluster, {}).setdefault(key, _Acc())
        if requests:
            acc.by_level[level or "unknown"] = acc.by_level.get(level or "unknown", 0) + int(
                requests
            )
        acc.request_bodies += int(req_bodies)
        acc.response_bodies += int(resp_bodies)
        acc.other_stages += int(others)
        acc.last_seen_at = last if acc.last_seen_at is None else max(acc.last_seen_at, last)
        acc.sources.add(source)
        acc.groups.add(group)
    for cluster in f.cluster:
        clusters.setdefault(cluster, {})
    pairs = required_pairs(requirements)
    out = [
        _cluster(name, accs, pairs, now=now, stale_after=stale_after)
        for name, accs in sorted(clusters.items())
    ]
    return CoverageReport(
        since=since,
        until=until,
        stale_after_seconds=int(stale_after.total_seconds()),
        clusters=out,
    )


def _row(key: tuple[str, str, str, str], acc: _Acc | None) -> CoverageRow:
    group, resource, sub, verb = key
    acc = acc or _Acc()
    return CoverageRow(
        group=group,
        resource=resource,
        subresource=sub,
        verb=verb,
        requests=sum(acc.by_level.values()),
        by_level=dict(acc.by_level),
        request_bodies=acc.request_bodies,
        response_bodies=acc.response_bodies,
        other_stages=acc.other_stages,
        last_seen_at=acc.last_seen_at,
        sources=sorted(acc.sources),
        groups_seen=sorted(acc.groups),
        status="seen",
    )


def _judge(
    row: CoverageRow, req: Requirement, *, cluster_last: datetime | None, stale_after: timedelta
) -> CoverageRow:
    reasons: list[str] = []
    status: Status = "ok"
    needed = LEVELS.index(req.level)
    if row.requests == 0:
        status = "red"
        if row.other_stages:
            reasons.append(
                f"{row.other_stages} stages seen but no ResponseComplete: results are never"
                " recorded (omitStages includes ResponseComplete?)"
            )
        else:
            reasons.append("never seen in this window")
    else:
        below = {
            level: n
            for level, n in row.by_level.items()
            if level not in LEVELS or LEVELS.index(level) < needed
        }
        if below:
            status = "red"
            shown = ", ".join(f"{n} at {level}" for level, n in sorted(below.items()))
            reasons.append(f"below the required {req.level}: {shown}")
        if req.level == "RequestResponse" and req.verb in _BODY_VERBS:
            full = row.by_level.get("RequestResponse", 0)
            if row.response_bodies < full:
                status = "red" if status == "red" else "amber"
                reasons.append(
                    f"{full - row.response_bodies} of {full} without a response body"
                    " (dropped by the API server as too large?)"
                )
    if (
        row.last_seen_at is not None
        and cluster_last is not None
        and cluster_last - row.last_seen_at > stale_after
    ):
        status = "red" if status == "red" else "amber"
        reasons.append(f"stale: nothing since {row.last_seen_at:%Y-%m-%d %H:%M} UTC")
    return row.model_copy(
        update={"required_level": req.level, "status": status, "reasons": reasons}
    )


def _cluster(
    name: str,
    accs: dict[tuple[str, str, str, str], _Acc],
    pairs: Sequence[Requirement],
    *,
    now: datetime,
    stale_after: timedelta,
) -> ClusterCoverage:
    seen_times = [a.last_seen_at for a in accs.values() if a.last_seen_at is not None]
    cluster_last = max(seen_times) if seen_times else None
    required = [
        _judge(
            _row(
                (req.group, req.resource, "", req.verb),
                accs.get((req.group, req.resource, "", req.verb)),
            ),
            req,
            cluster_last=cluster_last,
            stale_after=stale_after,
        )
        for req in pairs
    ]
    seen = sorted(
        (_row(key, acc) for key, acc in accs.items()),
        key=lambda r: (r.group, r.resource, r.subresource, r.verb),
    )
    return ClusterCoverage(
        cluster=name,
        last_seen_at=cluster_last,
        is_stale=cluster_last is None or now - cluster_last > stale_after,
        required=required,
        seen=seen,
    )


async def clusters_seen(session: AsyncSession) -> list[str]:
    """Every cluster that has sent anything (from the summary, not the events)."""
    rows = await session.scalars(select(CoverageHourly.cluster).distinct())
    return sorted(rows)
