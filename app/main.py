"""create_app(settings) -> FastAPI: lifespan (engine, redactor, metrics), routers, error handlers.

No import-time side effects: everything hangs off app.state, built from the given Settings.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.access import AccessPolicy, require
from app.api.coverage import router as coverage_api_router
from app.api.docs import router as docs_router
from app.api.reports import router as reports_api_router
from app.api.router import quarantine_router
from app.api.router import router as events_router
from app.audit import partitions, queries
from app.db import DATABASE_DOWN_ERRORS, make_engine, make_sessionmaker
from app.errors import AppError, SourceUnavailable
from app.ingest.auth import REJECT_REASONS, WarningLimiter
from app.ingest.limits import IngestLimiter
from app.ingest.router import kubernetes_status
from app.ingest.router import router as ingest_router
from app.metrics import Metrics
from app.poller.task import PollerTask, start_poller
from app.redaction_key import make_redactor
from app.report_schedule import ReportScheduler
from app.settings import Settings
from app.web.coverage import router as coverage_web_router
from app.web.hosts import HostOriginMiddleware, HostPolicy
from app.web.htmx import render_error, wants_html
from app.web.reports import router as reports_web_router
from app.web.router import router as web_router
from app.web.security import SecurityHeadersMiddleware
from app.web.templating import STATIC_DIR

logger = logging.getLogger(__name__)


async def _prepare_partitions(engine: AsyncEngine) -> None:
    """Create this and the coming weeks' partitions of audit_event at start-up (ingest also
    creates a week on demand); a database that is down now is not a reason to fail start-up."""
    try:
        await partitions.ensure_ahead(engine)
    except DATABASE_DOWN_ERRORS:
        logger.warning("partitions.not_prepared", extra={"reason": "database unavailable"})


def create_app(settings: Settings) -> FastAPI:
    """Build the application for these settings (database_url set: the CLI starts the
    embedded PostgreSQL and migrates before it builds the app)."""
    if settings.database_url is None:
        raise ValueError("create_app needs settings.database_url")
    database_url = settings.database_url.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(database_url)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        partitions_ready = asyncio.create_task(_prepare_partitions(engine))
        app.state.partitions_ready = partitions_ready
        poller = start_poller(app, settings, engine) if settings.es_url else None
        scheduler = (
            ReportScheduler(app.state.sessionmaker, settings) if settings.report_schedule else None
        )
        try:
            yield
        finally:
            if scheduler is not None:
                await scheduler.stop()
            if poller is not None:
                await poller.stop()
            partitions_ready.cancel()
            await engine.dispose()
            app.state.metrics.close()

    app = FastAPI(
        title="audit-timeline",
        summary="Kubernetes API-server audit events as a resource-change timeline",
        version="0.1.0",
        lifespan=lifespan,
        # /docs is served from our own static files (app/api/docs.py); ReDoc would need a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics(settings.prometheus_multiproc_dir)
    app.state.redactor = make_redactor(settings)
    app.state.ingest_tokens = settings.ingest_token_map()
    app.state.no_credentials_warning = WarningLimiter()
    for reason in REJECT_REASONS:
        app.state.metrics.ingest_rejected.labels(reason)  # exported as 0 until the first
    app.state.ingest_limiter = IngestLimiter(
        events_per_second=settings.ingest_rate_events,
        events_burst=settings.ingest_burst_events,
        bytes_per_second=settings.ingest_rate_bytes,
        bytes_burst=settings.ingest_burst_bytes,
    )

    app.state.access = AccessPolicy.from_settings(settings)
    viewer, admin = [Depends(require("viewer"))], [Depends(require("admin"))]
    app.include_router(ingest_router)
    app.include_router(events_router, prefix="/api/v1/events", dependencies=viewer)
    app.include_router(events_router, prefix="/events", dependencies=viewer)
    app.include_router(quarantine_router, prefix="/api/v1/quarantine", dependencies=admin)
    app.include_router(web_router, dependencies=viewer)
    app.include_router(coverage_api_router, prefix="/api/v1/coverage", dependencies=viewer)
    app.include_router(coverage_web_router, dependencies=viewer)
    app.include_router(reports_web_router, dependencies=viewer)
    app.include_router(reports_api_router, prefix="/api/v1/reports", dependencies=viewer)
    app.include_router(docs_router)
    # static/vendor/ is filled by scripts/vendor-assets (htmx and swagger-ui-dist from the
    # pinned npm packages).
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    hosts = HostPolicy(settings.allowed_hosts, is_loopback_bind=settings.is_loopback)
    app.add_middleware(HostOriginMiddleware, policy=hosts)
    # Added last, so outermost: the Host/Origin refusals carry the security headers too.
    app.add_middleware(SecurityHeadersMiddleware)
    _add_probes(app)
    _add_error_handlers(app)
    return app


def _add_probes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["probes"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["probes"],
        summary="The database answers",
        responses={503: {"description": "The database is down, or the poller failed for good"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with request.app.state.engine.connect() as conn:
                await queries.ping(conn)
        except DATABASE_DOWN_ERRORS:
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        body: dict[str, object] = {"status": "ok", "database": "up"}
        task: PollerTask | None = getattr(request.app.state, "poller", None)
        if task is not None:
            # Elasticsearch being down does not make the app unready (ingest and UI still
            # work); only a poller that died for good does.
            body["poller"] = task.status.as_dict()
            if task.status.state == "failed":
                body["status"] = "unavailable"
                return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _error_response(request: Request, status_code: int, error: str, detail: object) -> Response:
    if wants_html(request):
        return render_error(request, status_code, error)
    headers = {}
    if status_code == 503:
        headers["Retry-After"] = str(request.app.state.settings.ingest_retry_after_seconds)
    body: dict[str, object] = {"error": error, "detail": detail}
    if request.url.path == "/ingest":
        request.app.state.metrics.ingest_requests.labels(str(status_code)).inc()
        body |= kubernetes_status(status_code, error)
    return JSONResponse(body, status_code=status_code, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        return _error_response(request, exc.status_code, exc.message, None)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {
                # A check across parameters (since < until) has no single parameter.
                "param": ".".join(str(p) for p in err["loc"] if p not in ("query", "path", "body"))
                or "query",
                "message": err["msg"].removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]
        summary = "; ".join(f"{p['param']}: {p['message']}" for p in problems)
        return _error_response(request, 422, f"invalid parameters: {summary}", problems)

    async def database_down(request: Request, exc: Exception) -> Response:
        logger.warning(
            "database.unavailable", extra={"path": request.url.path, "error": str(exc)[:200]}
        )
        unavailable = SourceUnavailable("database unavailable, retry later")
        return _error_response(request, 503, unavailable.message, None)

    for error_class in DATABASE_DOWN_ERRORS:
        app.add_exception_handler(error_class, database_down)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        response = _error_response(request, exc.status_code, str(exc.detail), None)
        response.headers.update(exc.headers or {})
        return response
