"""GET /api/v1/reports/public-key: the Ed25519 public key that signs report bundles."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from app.api.openapi import error_responses
from app.audit.bundle import public_pem
from app.report_key import load_signing_key

router = APIRouter(tags=["reports"], responses=error_responses(401, 403, 503))


@router.get(
    "/public-key",
    summary="The Ed25519 public key (PEM) that signs report bundles",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/x-pem-file": {"schema": {"type": "string"}}}}},
)
async def public_key(request: Request) -> PlainTextResponse:
    # Created on first use: file I/O, off the event loop.
    key = await asyncio.to_thread(load_signing_key, request.app.state.settings)
    return PlainTextResponse(
        public_pem(key.public_key()).decode(), media_type="application/x-pem-file"
    )
