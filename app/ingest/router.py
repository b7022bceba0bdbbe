"""POST /ingest: the kube-apiserver webhook backend's target (also NDJSON and single events).

Answers 200 only after the batch is committed; 503 + Retry-After while PostgreSQL is away.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request, status

from app.api.openapi import error_responses
from app.audit import queries
from app.audit.intake import PreparedBatch, prepare_batch
from app.audit.schemas import IngestResult
from app.errors import PayloadTooLarge, UnsupportedEncoding, UnsupportedMediaType
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
    429: "TooManyRequests",
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


# What kube-apiserver (application/json), fluent-bit (application/json) and fluentd
# (application/x-ndjson) send. Anything else is refused: a web page can post text/plain,
# form data or no type at all without a CORS preflight, and must not forge events.
CONTENT_TYPES = (
    "application/json",
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
)


def check_rate(wait: float, *, cluster: str, unit: str) -> None:
    """Raise 429 with Retry-After when the sender has to wait."""
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"cluster {cluster!r} is over its ingest rate ({unit}): retry after {seconds}"
            " s (AUDIT_TIMELINE_INGEST_RATE_* / _BURST_* set the limits)",
            headers={"Retry-After": str(seconds)},
        )


def check_content_type(request: Request) -> None:
    """Raise UnsupportedMediaType unless the body is declared as JSON or NDJSON."""
    declared = request.headers.get("content-type", "")
    media_type = declared.partition(";")[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        shown = repr(declared[:60]) if declared else "missing"
        raise UnsupportedMediaType(
            f"Content-Type {shown} is not accepted: send one of {', '.join(CONTENT_TYPES)}"
            " (gzip as Content-Encoding)"
        )


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
    responses=error_responses(400, 401, 403, 413, 415, 422, 429, 503, is_ingest=True),
)
async def ingest(
    request: Request, cluster: Annotated[str, Depends(authenticate_ingest)]
) -> IngestResult:
    state = request.app.state
    started = time.perf_counter()
    check_content_type(request)
    limit = state.settings.ingest_max_body_bytes
    body = await read_body(request, limit)
    limiter = state.ingest_limiter
    check_rate(limiter.take_bytes(cluster, len(body)), cluster=cluster, unit="bytes")
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
    count = len(batch.events) + len(batch.quarantined)
    check_rate(limiter.take_events(cluster, count), cluster=cluster, unit="events")
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
