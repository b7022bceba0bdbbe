"""HTML routes: the timeline (/), event detail and diffs (/changes/{id}), object history.

Each URL serves the full page, or its partial to htmx. Parses, calls queries, renders.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlencode

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.audit import gaps, queries, request_rows, rollups
from app.audit.normalize import canonical_group
from app.audit.queries import ObjectKey
from app.audit.schemas import WINDOWS, TimelineFilter
from app.audit.versions import load_change
from app.db import SessionDep
from app.web import views
from app.web.htmx import is_partial_request, render

router = APIRouter(include_in_schema=False)

Tab = Literal["request", "previous", "raw"]
# Filter pickers: (filter field, label, plural for the search box).
PICKERS = (
    ("resource", "Resource", "resources"),
    ("namespace", "Namespace", "namespaces"),
    ("user", "User", "users"),
    ("group", "Group", "groups"),
    ("verb", "Verb", "verbs"),
    ("cluster", "Cluster", "clusters"),
    ("stage", "Stage", "stages"),
)
# Quick views: the questions security teams ask most, one click each.
PRESETS = (
    (
        "kube-system service accounts, last 24 h",
        urlencode({"user": "system:serviceaccount:kube-system:*", "window": "24h"}),
    ),
    ("system:masters, last 24 h", urlencode({"group": "system:masters", "window": "24h"})),
    ("Failures, last 24 h", urlencode({"status": "failure", "window": "24h"})),
)
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
    """The dashboard's reading of a filter: changes only unless reads are asked for, one row
    per request unless every stage is asked for."""
    update: dict[str, Any] = {}
    if f.include_reads is None:
        update["include_reads"] = False
    if f.per is None:
        update["per"] = "request"
    return f.model_copy(update=update) if update else f


_LIST_PARAMS = frozenset(
    name for name, field in TimelineFilter.model_fields.items() if field.default_factory is list
)


def parse_filter(request: Request) -> tuple[TimelineFilter, dict[str, str], dict[str, str]]:
    """The filter in the page's query string, with each unusable parameter left out rather than
    failing the page (a shared or reloaded URL always renders): (filter, message by
    parameter, the text given for each left-out parameter)."""
    data: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key in _LIST_PARAMS:
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    errors: dict[str, str] = {}
    typed: dict[str, str] = {}
    for _ in range(len(data) + 1):
        try:
            return TimelineFilter.model_validate(data), errors, typed
        except ValidationError as exc:
            for error in exc.errors():
                # A check across parameters (since < until) is reported on `until`.
                name = str(error["loc"][0]) if error["loc"] else "until"
                if name not in data:
                    continue
                value = data.pop(name)
                typed[name] = value if isinstance(value, str) else ", ".join(value)
                errors[name] = (
                    "unknown parameter"
                    if error["type"] == "extra_forbidden"
                    else str(error["msg"]).removeprefix("Value error, ")
                )
    return TimelineFilter(), errors, typed


@router.get("/", response_class=HTMLResponse, name="timeline")
async def timeline(request: Request, session: SessionDep) -> HTMLResponse:
    # Parsed by hand, not as Annotated[TimelineFilter, Query()]: a bad value (a mistyped
    # custom range) is shown beside its field instead of turning the page into a 422.
    parsed, errors, typed = parse_filter(request)
    shown = dashboard_filter(parsed)
    now = datetime.now(UTC)
    rows, next_cursor = await queries.timeline(session, shown)
    stages = await request_rows.request_stages(session, rows)
    context: dict[str, Any] = {
        "filters": shown,
        "rows": [
            views.event_row(row, stages=stages.get((row.cluster, row.audit_id), ())) for row in rows
        ],
        "next_cursor": next_cursor,
        "now": now,
        "errors": errors,
        "typed": typed,
        "unit": "request" if shown.is_per_request() else "stage-event",
        "unit_plural": "requests" if shown.is_per_request() else "stage-events",
    }
    if shown.cursor and is_partial_request(request):
        # Infinite scroll: just the next page of rows.
        return render(request, "timeline/page.html", partial="timeline/_rows.html", **context)
    facets = await rollups.facet_counts(session, shown, now=now)
    # The count is cheap from the rollups; otherwise it comes with the histogram.
    total = (
        await rollups.matching_count(session, shown, now=now)
        if rollups.is_rollup_filter(shown)
        else None
    )
    return render(
        request,
        "timeline/page.html",
        partial="timeline/_timeline.html",
        facets=facets.counts,
        facets_sampled=facets.sampled,
        total=total,
        windows=list(WINDOWS),
        pickers=PICKERS,
        presets=PRESETS,
        **context,
    )


@router.get("/histogram", response_class=HTMLResponse, name="histogram")
async def histogram(request: Request, session: SessionDep) -> HTMLResponse:
    """The timeline's histogram, in its own request so the list paints first (htmx loads it
    into the page; without JavaScript it is a page of its own)."""
    parsed, errors, typed = parse_filter(request)
    shown = dashboard_filter(parsed)
    now = datetime.now(UTC)
    buckets = await rollups.histogram(session, shown, now=now)
    return render(
        request,
        "timeline/histogram_page.html",
        partial="timeline/_histogram.html",
        filters=shown,
        buckets=buckets,
        total=sum(b.count for b in buckets),
        count_known=rollups.is_rollup_filter(shown),
        now=now,
        errors=errors,
        unit="request" if shown.is_per_request() else "stage-event",
        unit_plural="requests" if shown.is_per_request() else "stage-events",
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
    stages = await request_rows.request_stages(session, [row])
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
        row=views.event_row(row, stages=stages.get((row.cluster, row.audit_id), ())),
        annotations=views.shown_annotations(row),
        change=loaded.change,
        tab=tab,
        noise=noise,
        lines=lines,
        view=view,
        raw=raw,
        gap_list=await gaps.event_gaps(session, row, previous=loaded.previous),
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
        gaps=gaps.gap_markers(rows, previous=before_page),
        next_cursor=next_cursor,
        this_url=views.object_url(key),
        reads=reads,
        now=datetime.now(UTC),
    )


def object_segments(request: Request) -> list[str]:
    """The path segments after /objects/, split on the slashes as sent: a name or namespace
    with an encoded slash (%2F, common in CRDs) stays one segment."""
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    tail = raw_path.partition(b"?")[0].decode("latin-1").split("/objects/", 1)[-1]
    return [unquote(part) for part in tail.split("/")]


@router.get("/objects/{object_path:path}", response_class=HTMLResponse, name="object")
async def object_history(
    request: Request,
    object_path: str,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    reads: Literal["hide", "show"] = "hide",
) -> HTMLResponse:
    """One object's events (reads folded unless reads=show):
    /objects/{cluster}/namespaces/{namespace}/{resource}/{name}, or
    /objects/{cluster}/{resource}/{name} for cluster-scoped objects; segments percent-encoded."""
    segments = object_segments(request)
    if len(segments) == 5 and segments[1] == "namespaces":
        cluster, _, namespace, resource, name = segments
        key = parse_object_key(cluster, resource, namespace, name)
    elif len(segments) == 3:
        cluster, resource, name = segments
        key = parse_object_key(cluster, resource, None, name)
    else:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="object URLs are /objects/{cluster}[/namespaces/{namespace}]/{resource}/{name}"
            " (encode a / inside a segment as %2F)",
        )
    if not all(segments):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="an object URL segment is empty")
    return await _history(request, session, key, cursor, reads)
