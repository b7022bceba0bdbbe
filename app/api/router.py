"""GET /api/v1/events (and its alias /events): filtered, keyset-paginated events as JSON.

Parses and renders only; the SQL lives in app/audit/queries.py.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.audit import queries
from app.audit.models import AuditEvent
from app.audit.normalize import reconstruct_event
from app.audit.schemas import AuditEventDetail, AuditEventOut, EventPage, TimelineFilter, UserOut
from app.db import SessionDep

router = APIRouter(tags=["events"])


def event_out(row: AuditEvent) -> AuditEventOut:
    """The listing shape of a stored event."""
    return AuditEventOut(**_common_fields(row))


def _common_fields(row: AuditEvent) -> dict[str, object]:
    impersonated = (
        UserOut(username=row.impersonated_user, groups=row.impersonated_groups)
        if row.impersonated_user is not None or row.impersonated_groups
        else None
    )
    return {
        "id": row.id,
        "cluster": row.cluster,
        "audit_id": row.audit_id,
        "stage": row.stage,
        "level": row.level,
        "verb": row.verb,
        "request_uri": row.request_uri,
        "api_group": row.api_group,
        "api_version": row.api_version,
        "resource": row.resource,
        "subresource": row.subresource,
        "namespace": row.namespace,
        "name": row.name,
        "user": UserOut(username=row.username, uid=row.user_uid, groups=row.user_groups),
        "impersonated_user": impersonated,
        "source_ips": row.source_ips,
        "user_agent": row.user_agent,
        "response_code": row.response_code,
        "response_status": row.response_status,
        "response_reason": row.response_reason,
        "response_message": row.response_message,
        "authz_decision": row.authz_decision,
        "authz_reason": row.authz_reason,
        "requested_at": row.requested_at,
        "stage_at": row.stage_at,
        "source": row.source,
        "url": f"/api/v1/events/{row.id}",
    }


@router.get("", summary="List events, newest first", response_model=EventPage)
async def list_events(f: Annotated[TimelineFilter, Query()], session: SessionDep) -> EventPage:
    rows, next_cursor = await queries.timeline(session, f)
    return EventPage(items=[event_out(row) for row in rows], next_cursor=next_cursor)


@router.get(
    "/{event_id}",
    summary="One event with its bodies",
    response_model=AuditEventDetail,
    responses={404: {"description": "No event with this id"}},
)
async def get_event(
    event_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep
) -> AuditEventDetail:
    row = await queries.get_event(session, event_id)
    return AuditEventDetail(
        **_common_fields(row),
        request_object=row.request_object,
        response_object=row.response_object,
        source_meta=row.source_meta,
        ingested_at=row.ingested_at,
        event=reconstruct_event(row.raw, row.request_object, row.response_object),
    )
