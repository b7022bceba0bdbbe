"""Requests as the unit: how complete each stage is, the per-request locks that keep exactly one
stored stage per request flagged (is_request_row) at ingest, the plan of a batch's insert, and a
request's stored stages.

The flag itself is written by queries.insert_events: lock_requests, then plan_insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent

# How complete a stage is: a request is shown by its most complete stored stage.
STAGE_RANK: dict[str, int] = {
    "RequestReceived": 1,
    "ResponseStarted": 2,
    "ResponseComplete": 3,
    "Panic": 4,
}


@dataclass(frozen=True)
class InsertPlan:
    """What insert_events does with a batch, by index in the batch: rows to insert (new),
    which of them become their request's row (flagged), rows whose identity is taken already
    (repeated: compared, not inserted), and the stored rows that lose the flag (id, stage_at)."""

    new: list[int]
    flagged: frozenset[int]
    repeated: list[int]
    superseded: list[tuple[int, datetime]]


def plan_insert(
    rows: Sequence[Mapping[str, Any]],
    stored: Iterable[tuple[str, str, str, int, datetime, bool]],
) -> InsertPlan:
    """Decide a batch against the stored stages of its requests, given as (cluster, audit_id,
    stage, id, stage_at, is_request_row). The first row of an identity wins; a new row is its
    request's row when it is the most complete stage of the request, batch and stored alike."""
    taken: set[tuple[str, str, str]] = set()
    best: dict[tuple[str, str], int] = {}
    flagged_stored: dict[tuple[str, str], list[tuple[int, datetime]]] = {}
    for cluster, audit_id, stage, event_id, stage_at, is_request_row in stored:
        taken.add((cluster, audit_id, stage))
        request = (cluster, audit_id)
        best[request] = max(best.get(request, 0), STAGE_RANK.get(stage, 0))
        if is_request_row:
            flagged_stored.setdefault(request, []).append((event_id, stage_at))
    new: list[int] = []
    repeated: list[int] = []
    top: dict[tuple[str, str], tuple[int, int]] = {}  # request -> (rank, index) of the best row
    for index, row in enumerate(rows):
        key = (row["cluster"], row["audit_id"], row["stage"])
        request = key[:2]
        rank = STAGE_RANK.get(key[2], 0)
        if key in taken:
            repeated.append(index)
            continue
        taken.add(key)
        new.append(index)
        if rank > best.get(request, 0) and rank > top.get(request, (0, -1))[0]:
            top[request] = (rank, index)
    winners = {request: index for request, (_, index) in top.items()}
    superseded = [pair for request in winners for pair in flagged_stored.get(request, [])]
    return InsertPlan(new, frozenset(winners.values()), repeated, superseded)


# Per-request advisory locks: a batch with at most this many requests locks each one (64-bit
# hash keys) under a shared lock on its bucket; a larger batch locks the buckets exclusively,
# so no transaction holds more than about 2 x _LOCK_BUCKETS locks (PostgreSQL's lock table
# is max_locks_per_transaction x max_connections entries, shared by all sessions).
_LOCK_BUCKETS = 512
_LOCK_CLASS = 0x7B1A  # the (int4, int4) key space of the bucket locks
_REQUEST_KEY_SQL = "hashtextextended(cluster || chr(31) || audit_id, 0)"


async def lock_requests(cursor: Any, *, clusters: Sequence[str], audit_ids: Sequence[str]) -> None:
    """Lock the requests (clusters[i], audit_ids[i]) until the transaction ends."""
    # Whoever stores stages of a request holds its lock until commit, so the stages already
    # stored for it are all visible to the insert and none is being added meanwhile: exactly
    # one stage per request ends up flagged, however batches interleave. Locks are taken in
    # sorted order (buckets, then requests), so lockers cannot deadlock each other.
    keys = (
        f"SELECT DISTINCT {_REQUEST_KEY_SQL} AS k"
        " FROM unnest(%s::text[], %s::text[]) AS r(cluster, audit_id)"
    )
    bucket = f"((k %% {_LOCK_BUCKETS}) + {_LOCK_BUCKETS}) %% {_LOCK_BUCKETS}"
    params = (list(clusters), list(audit_ids))
    if len(clusters) > _LOCK_BUCKETS:
        await cursor.execute(
            f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, b::int) FROM"
            f" (SELECT DISTINCT {bucket} AS b FROM ({keys}) r ORDER BY 1 OFFSET 0) s",
            params,
        )
        return
    await cursor.execute(
        f"SELECT pg_advisory_xact_lock_shared({_LOCK_CLASS}, b::int) FROM"
        f" (SELECT DISTINCT {bucket} AS b FROM ({keys}) r ORDER BY 1 OFFSET 0) s",
        params,
    )
    await cursor.execute(
        f"SELECT pg_advisory_xact_lock(k) FROM ({keys} ORDER BY 1 OFFSET 0) s", params
    )


async def request_stages(
    session: AsyncSession, rows: Sequence[AuditEvent]
) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """Every stored stage of the rows' requests, least to most complete, as (stage, id) by
    (cluster, audit_id)."""
    keys = {(row.cluster, row.audit_id) for row in rows}
    if not keys:
        return {}
    stmt = select(AuditEvent.cluster, AuditEvent.audit_id, AuditEvent.stage, AuditEvent.id).where(
        tuple_(AuditEvent.cluster, AuditEvent.audit_id).in_(sorted(keys))
    )
    stages: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for cluster, audit_id, stage, event_id in (await session.execute(stmt)).all():
        stages.setdefault((cluster, audit_id), []).append((stage, event_id))
    for found in stages.values():
        found.sort(key=lambda pair: STAGE_RANK.get(pair[0], 0))
    return stages
