"""POST /ingest: the kube-apiserver webhook backend's target (also NDJSON and single events).

Answers 200 only after the batch is committed; 503 + Retry-After while PostgreSQL is away.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request

from app.audit import queries
from app.audit.intake import PreparedBatch, prepare_batch
from app.audit.schemas import IngestResult
from app.errors import PayloadTooLarge, UnsupportedEncoding
from app.ingest.auth import authenticate_ingest
from app.ingest.decode import gunzip, split_body

logger = logging.getLogger(__name__)
router = APIRouter(tags=["ingest"])

SOURCE = "webhook"
# metav1.StatusReason for the codes /ingest answers with.
_STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    503: "ServiceUnavailable",
}


def kubernetes_status(status_code: int, message: str) -> dict[str, object]:
    """Fields that make an error body also a Kubernetes `Status`: client-go (kube-apiserver's
    webhook backend) then reports `message` in the API server's log instead of a generic
    "the server has asked for the client to provide credentials"."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _STATUS_REASONS.get(status_code, ""),
        "code": status_code,
    }


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over limit bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/ingest",
    response_model=IngestResult,
    summary="Store audit events (EventList, Event, JSON array or NDJSON; gzip accepted)",
    responses={
        400: {"description": "The body is no EventList, Event, array or NDJSON"},
        401: {"description": "Missing or unknown bearer token"},
        413: {"description": "Body larger than AUDIT_TIMELINE_INGEST_MAX_BODY_BYTES"},
        503: {"description": "Database unavailable: retry after Retry-After seconds"},
    },
)
async def ingest(
    request: Request, cluster: Annotated[str, Depends(authenticate_ingest)]
) -> IngestResult:
    state = request.app.state
    started = time.perf_counter()
    limit = state.settings.ingest_max_body_bytes
    body = await read_body(request, limit)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding[:40]!r} is not supported: send gzip or no encoding"
        )
    is_gzip = encoding in ("gzip", "x-gzip")

    def prepare() -> PreparedBatch:
        data = gunzip(body, limit=limit) if is_gzip else body
        return prepare_batch(
            split_body(data, max_items=state.settings.ingest_max_items),
            cluster=cluster,
            source=SOURCE,
            redactor=state.redactor,
        )

    # Parsing a 10 MiB batch is CPU work: keep the event loop free for other senders.
    batch = await anyio.to_thread.run_sync(prepare)
    async with state.sessionmaker.begin() as session:
        result = await queries.store_batch(
            session,
            events=batch.events,
            quarantined=batch.quarantined,
            cluster=cluster,
            source=SOURCE,
        )
    state.metrics.count_store(
        SOURCE,
        stored=result.stored,
        duplicates=result.duplicates,
        quarantined=result.quarantined,
    )
    state.metrics.ingest_requests.labels("200").inc()
    state.metrics.ingest_seconds.observe(time.perf_counter() - started)
    logger.info(
        "ingest.batch_stored",
        extra={
            "cluster": cluster,
            "stored": result.stored,
            "duplicates": result.duplicates,
            "quarantined": result.quarantined,
        },
    )
    return IngestResult(
        stored=result.stored, duplicates=result.duplicates, quarantined=result.quarantined
    )
