"""HTML routes: the timeline (/), event detail and diffs (/changes/{id}), object history.

Each URL serves the full page, or its partial to htmx. Parses, calls queries, renders.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from app.audit import queries
from app.audit.normalize import canonical_group
from app.audit.queries import ObjectKey
from app.audit.schemas import WINDOWS, TimelineFilter
from app.audit.versions import load_change
from app.db import SessionDep
from app.web import views
from app.web.htmx import is_partial_request, render

router = APIRouter(include_in_schema=False)

Tab = Literal["request", "previous", "raw"]
_HISTORY_PAGE = 25


def parse_object_key(cluster: str, resource: str, namespace: str | None, name: str) -> ObjectKey:
    """An object from its URL: `resource.group` names the group (networkpolicies.extensions and
    networkpolicies.networking.k8s.io are one), a bare resource any group (links made before
    groups were part of the URL, and core resources)."""
    plain, _, group = resource.partition(".")
    canonical = canonical_group(plain, group) if group else None
    return ObjectKey(
        cluster=cluster, resource=plain, namespace=namespace, name=name, group=canonical
    )


def dashboard_filter(f: TimelineFilter) -> TimelineFilter:
    """The dashboard's reading of a filter: changes only unless reads are asked for."""
    if f.include_reads is None:
        return f.model_copy(update={"include_reads": False})
    return f


@router.get("/", response_class=HTMLResponse, name="timeline")
async def timeline(
    request: Request, f: Annotated[TimelineFilter, Query()], session: SessionDep
) -> HTMLResponse:
    shown = dashboard_filter(f)
    now = datetime.now(UTC)
    rows, next_cursor = await queries.timeline(session, shown)
    context: dict[str, Any] = {
        "filters": shown,
        "rows": [views.event_row(row) for row in rows],
        "next_cursor": next_cursor,
        "now": now,
    }
    if shown.cursor and is_partial_request(request):
        # Infinite scroll: just the next page of rows.
        return render(request, "timeline/page.html", partial="timeline/_rows.html", **context)
    facets = await queries.facet_counts(session, shown)
    buckets = await queries.histogram(session, shown, now=now)
    return render(
        request,
        "timeline/page.html",
        partial="timeline/_timeline.html",
        facets=facets,
        facet_sample=queries.FACET_SAMPLE,
        buckets=buckets,
        windows=list(WINDOWS),
        **context,
    )


@router.get("/changes/{event_id}", response_class=HTMLResponse, name="change")
async def change(
    request: Request,
    event_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    session: SessionDep,
    tab: Tab | None = None,
    noise: Literal["hide", "show"] = "hide",
    lines: Literal["folded", "all"] = "folded",
) -> HTMLResponse:
    row = await queries.get_event(session, event_id)
    if tab is None:
        # For an update or patch the question is what changed, not what was sent.
        tab = "previous" if row.verb in ("update", "patch") else "request"
    hide_noise, show_all = noise == "hide", lines == "all"
    view: views.DiffView | None = None
    raw: str | None = None
    loaded = await load_change(session, row)
    if tab == "request":
        view = await run_in_threadpool(
            views.request_response_view, row, hide_noise=hide_noise, show_all=show_all
        )
    elif tab == "previous":
        view = await run_in_threadpool(
            views.previous_version_view,
            row,
            loaded.previous,
            loaded.change,
            hide_noise=hide_noise,
            show_all=show_all,
        )
    else:
        raw = await run_in_threadpool(views.raw_json, row)
    return render(
        request,
        "diff/page.html",
        partial="diff/_diff.html",
        row=views.event_row(row),
        annotations=views.shown_annotations(row),
        change=loaded.change,
        tab=tab,
        noise=noise,
        lines=lines,
        view=view,
        raw=raw,
        now=datetime.now(UTC),
    )


async def _history(
    request: Request, session: SessionDep, key: ObjectKey, cursor: str | None, reads: str
) -> HTMLResponse:
    rows, next_cursor = await queries.object_events(
        session, key, cursor=cursor, limit=_HISTORY_PAGE
    )
    before_page = await queries.previous_version(session, rows[-1]) if rows else None
    unrecorded = (
        await queries.unrecorded_changes_between(session, rows[-1], previous=before_page)
        if rows and before_page is not None
        else 0
    )
    entries = await run_in_threadpool(
        functools.partial(
            views.history_entries,
            rows,
            before_page,
            show_reads=reads == "show",
            unrecorded=unrecorded,
        )
    )
    return render(
        request,
        "objects/page.html",
        partial="objects/_history.html",
        key=key,
        entries=entries,
        next_cursor=next_cursor,
        this_url=views.object_url(key),
        reads=reads,
        now=datetime.now(UTC),
    )


@router.get(
    "/objects/{cluster}/namespaces/{namespace}/{resource}/{name}",
    response_class=HTMLResponse,
    name="namespaced_object",
)
@router.get(
    "/objects/{cluster}/{resource}/{name}", response_class=HTMLResponse, name="cluster_object"
)
async def object_history(
    request: Request,
    cluster: str,
    resource: str,
    name: str,
    session: SessionDep,
    namespace: str | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    reads: Literal["hide", "show"] = "hide",
) -> HTMLResponse:
    """One object's events (reads folded unless reads=show); the second URL form is for
    cluster-scoped objects."""
    return await _history(
        request, session, parse_object_key(cluster, resource, namespace, name), cursor, reads
    )
