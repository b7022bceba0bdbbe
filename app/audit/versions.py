"""Loads what a change view of one event needs: the previous stored version, how many changes
without a recorded result lie between, and describe_change's reading. No SQL of its own."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.audit import queries
from app.audit.changes import EventChange, describe_change
from app.audit.models import AuditEvent


@dataclass(frozen=True)
class LoadedChange:
    """An event's change with the version it was compared against."""

    previous: AuditEvent | None
    unrecorded: int
    change: EventChange


async def load_change(session: AsyncSession, event: AuditEvent) -> LoadedChange:
    """The event's effect on its object against the last stored version before it."""
    previous = await queries.previous_version(session, event)
    unrecorded = (
        await queries.unrecorded_changes_between(session, event, previous=previous)
        if previous is not None
        else 0
    )
    # Diffing large bodies is CPU work: keep it off the event loop.
    change = await asyncio.to_thread(
        functools.partial(
            describe_change,
            event,
            previous.response_object if previous is not None else None,
            unrecorded=unrecorded,
        )
    )
    return LoadedChange(previous, unrecorded, change)
