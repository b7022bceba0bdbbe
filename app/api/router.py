"""GET /api/v1/events (and its alias /events): filtered, keyset-paginated events as JSON.

Parses and renders only; the SQL lives in app/audit/queries.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.background import BackgroundTask

from app.access import require
from app.api.openapi import error_responses
from app.audit import export_sql, queries, rollups
from app.audit.changes import change_out
from app.audit.export import CSV_HEADER, csv_header, export_filename
from app.audit.normalize import reconstruct_event
from app.audit.schemas import (
    AuditEventDetail,
    EventPage,
    FacetCounts,
    FacetSample,
    FacetValue,
    QuarantinedOut,
    QuarantinePage,
    TimelineFilter,
    event_fields,
    event_out,
)
from app.audit.seal import SealBroken
from app.audit.versions import load_change
from app.db import SessionDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["events"], responses=error_responses(400, 401, 403, 422, 503))
quarantine_router = APIRouter(tags=["quarantine"], responses=error_responses(401, 403, 422, 503))
QUARANTINE_PREVIEW_BYTES = 4096

EXPORT_DOC = (
    "All events matching the filters (cursor and limit are ignored), newest first. Columns: "
    + ", ".join(CSV_HEADER)
    + ". CSV: UTF-8 with a byte-order mark, lists joined with ';', cells starting with "
    "= + - @ tab, CR or LF prefixed with a single quote."
)


@router.get("", summary="List events, newest first", response_model=EventPage)
async def list_events(f: Annotated[TimelineFilter, Query()], session: SessionDep) -> EventPage:
    rows, next_cursor = await queries.timeline(session, f)
    return EventPage(items=[event_out(row) for row in rows], next_cursor=next_cursor)


# Declared before "/{event_id}" so that "export.csv" is not taken for an event id.
@router.get(
    "/facets",
    summary="Counts per value of each filter (resource, namespace, user, group, verb, …)",
    response_model=FacetCounts,
)
async def facets(f: Annotated[TimelineFilter, Query()], session: SessionDep) -> FacetCounts:
    counts = await rollups.facet_counts(session, f, now=datetime.now(UTC))
    return FacetCounts(
        sampled={
            facet: FacetSample(newest=sample.newest, matching=sample.matching)
            for facet, sample in counts.sampled.items()
        },
        facets={
            facet: [FacetValue(value=value, count=count) for value, count in pairs]
            for facet, pairs in counts.counts.items()
        },
    )


@router.get(
    "/export.csv",
    summary="Every matching event as CSV (streamed; formula cells neutralised)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": EXPORT_DOC}},
    dependencies=[Depends(require("exporter"))],
)
async def export_csv(request: Request, f: Annotated[TimelineFilter, Query()]) -> StreamingResponse:
    return await _export_response(request, f, extension="csv")


@router.get(
    "/export.ndjson",
    summary="Every matching event as newline-delimited JSON (streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": EXPORT_DOC}},
    dependencies=[Depends(require("exporter"))],
)
async def export_ndjson(
    request: Request, f: Annotated[TimelineFilter, Query()]
) -> StreamingResponse:
    return await _export_response(request, f, extension="ndjson")


async def _export_response(
    request: Request, f: TimelineFilter, *, extension: str
) -> StreamingResponse:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    base_url = str(request.base_url)
    fmt: export_sql.ExportFormat = "csv" if extension == "csv" else "ndjson"
    session = sessionmaker()
    # PostgreSQL renders the finished lines (export_sql: byte-identical to export.py's).
    chunks = export_sql.stream_export(session, f, fmt=fmt, base_url=base_url)
    try:
        # The first batch is fetched before answering, so a database error is still a 503.
        first = await anext(chunks, None)
    except BaseException:
        await session.close()
        raise

    async def close() -> None:
        # Idempotent: from the body when it ends, and as the response's background task for a
        # client that left before the body started (then the body's finally never runs).
        await chunks.aclose()
        await session.close()

    async def body() -> AsyncIterator[str | bytes]:
        try:
            if extension == "csv":
                yield csv_header()
            if first is None:
                return
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            await close()

    filters = f.model_dump(mode="json", exclude={"cursor", "limit"}, exclude_none=True)
    filename = export_filename(filters, at=datetime.now(UTC), extension=extension)
    media_type = "text/csv; charset=utf-8" if extension == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body(),
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        background=BackgroundTask(close),
    )


@router.get(
    "/{event_id}",
    summary="One event with its bodies",
    response_model=AuditEventDetail,
    responses=error_responses(404),
)
async def get_event(
    event_id: Annotated[int, Path(ge=1, le=2**63 - 1)], session: SessionDep
) -> AuditEventDetail:
    row = await queries.get_event(session, event_id)
    loaded = await load_change(session, row)
    return AuditEventDetail(
        **event_fields(row),
        request_object=row.request_object,
        response_object=row.response_object,
        source_meta=row.source_meta,
        ingested_at=row.ingested_at,
        event=reconstruct_event(row.raw, row.request_object, row.response_object),
        change=change_out(
            loaded.change,
            previous_event_id=loaded.previous.id if loaded.previous is not None else None,
            unrecorded=loaded.unrecorded,
        ),
    )


@quarantine_router.get(
    "",
    summary="Items that were not stored as events (unparsable, invalid, or a reused auditID)",
    response_model=QuarantinePage,
)
async def list_quarantined(
    session: SessionDep,
    cluster: Annotated[str | None, Query(max_length=63, pattern=r"^[^\x00]*$")] = None,
    source: Annotated[Literal["webhook", "file", "elasticsearch"] | None, Query()] = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="From next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> QuarantinePage:
    rows = await queries.list_quarantined(
        session, cluster=cluster, source=source, before_id=cursor, limit=limit + 1
    )
    items = [
        QuarantinedOut(
            id=row.id,
            cluster=row.cluster,
            source=row.source,
            origin=row.origin,
            error=row.error,
            received_at=row.received_at,
            is_redacted=row.is_redacted,
            is_sealed=row.raw_sealed is not None,
            size=len(row.raw),
            raw=row.raw[:QUARANTINE_PREVIEW_BYTES].decode("utf-8", "replace"),
        )
        for row in rows[:limit]
    ]
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return QuarantinePage(items=items, next_cursor=next_cursor)


@quarantine_router.get(
    "/{item_id}/raw",
    summary="The bytes as received, decrypted if they were kept sealed (admin only)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **error_responses(404, 409)},
)
async def quarantined_raw(
    request: Request, session: SessionDep, item_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> Response:
    row = await queries.get_quarantined(session, item_id)
    data = row.raw
    if row.raw_sealed is not None:
        try:
            data = request.app.state.redactor.sealer.open(row.raw_sealed)
        except SealBroken as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"quarantined item {item_id} cannot be decrypted: {exc}"
                " (was AUDIT_TIMELINE_REDACTION_KEY changed?)",
            ) from None
    logger.warning(
        "quarantine.raw_revealed", extra={"item": item_id, "is_sealed": row.raw_sealed is not None}
    )
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="quarantined-{item_id}.bin"'},
    )
