"""Requests as the unit: how complete each stage is, the per-request locks that keep exactly one
stored stage per request flagged (is_request_row) at ingest, and a request's stored stages.

The flag itself is written by queries.insert_events, which calls lock_requests first.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def rank_sql(alias: str) -> str:
    """SQL for STAGE_RANK of the stage column of the table aliased as alias."""
    whens = "".join(f" WHEN '{stage}' THEN {rank}" for stage, rank in STAGE_RANK.items())
    return f"CASE {alias}.stage{whens} ELSE 0 END"


# Per-request advisory locks: a batch with at most this many requests locks each one (64-bit
# hash keys) under a shared lock on its bucket; a larger batch locks the buckets exclusively,
# so no transaction holds more than about 2 x _LOCK_BUCKETS locks (PostgreSQL's lock table
# is max_locks_per_transaction x max_connections entries, shared by all sessions).
_LOCK_BUCKETS = 512
_LOCK_CLASS = 0x7B1A  # the (int4, int4) key space of the bucket locks
_REQUEST_KEY_SQL = "hashtextextended(cluster || chr(31) || audit_id, 0)"


async def lock_requests(cursor: Any) -> None:
    """Lock the requests of the batch in incoming_event until the transaction ends."""
    # Whoever stores stages of a request holds its lock until commit, so the stages already
    # stored for it are all visible to the INSERT below and none is being added meanwhile:
    # exactly one stage per request ends up flagged, however batches interleave. Locks are
    # taken in sorted order (buckets, then requests), so lockers cannot deadlock each other.
    await cursor.execute(f"SELECT count(DISTINCT {_REQUEST_KEY_SQL}) FROM incoming_event")
    row = await cursor.fetchone()
    requests = int(row[0]) if row else 0
    bucket = f"(({_REQUEST_KEY_SQL} % {_LOCK_BUCKETS}) + {_LOCK_BUCKETS}) % {_LOCK_BUCKETS}"
    if requests > _LOCK_BUCKETS:
        await cursor.execute(
            f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, b::int) FROM"
            f" (SELECT DISTINCT {bucket} AS b FROM incoming_event ORDER BY 1 OFFSET 0) s"
        )
        return
    await cursor.execute(
        f"SELECT pg_advisory_xact_lock_shared({_LOCK_CLASS}, b::int) FROM"
        f" (SELECT DISTINCT {bucket} AS b FROM incoming_event ORDER BY 1 OFFSET 0) s"
    )
    await cursor.execute(
        "SELECT pg_advisory_xact_lock(k) FROM"
        f" (SELECT DISTINCT {_REQUEST_KEY_SQL} AS k FROM incoming_event ORDER BY 1 OFFSET 0) s"
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
