"""GET /api/v1/coverage: per cluster, what the API server sends against what is required.

Parses and answers only; the SQL and the verdicts live in app/audit/coverage.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.api.openapi import error_responses
from app.audit import coverage
from app.audit.coverage import CoverageFilter, CoverageReport
from app.db import SessionDep

router = APIRouter(tags=["coverage"], responses=error_responses(401, 403, 422, 503))


@router.get(
    "",
    summary="Audit coverage per cluster: levels, bodies, last seen, ways in; red/amber verdicts",
    response_model=CoverageReport,
)
async def get_coverage(
    request: Request, f: Annotated[CoverageFilter, Query()], session: SessionDep
) -> CoverageReport:
    settings = request.app.state.settings
    return await coverage.coverage(
        session, f, now=datetime.now(UTC), stale_after=settings.coverage_stale_after
    )
