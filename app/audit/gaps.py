"""Gap markers: where the stored record of one object is incomplete, and why, in one line each.

gap_markers is pure: an object's stored events (stage rows, any order) -> markers per event id.
event_gaps reads what one event's markers need (its request's stages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent
from app.audit.queries import is_version

GapKind = Literal[
    "not_recorded", "no_result", "failed", "jump", "truncated", "garbage_collector", "controller"
]

GARBAGE_COLLECTOR = "system:serviceaccount:kube-system:generic-garbage-collector"
NAMESPACE_CONTROLLER = "system:serviceaccount:kube-system:namespace-controller"
TRUNCATED_ANNOTATION = "audit.k8s.io/truncated"
_FINAL_STAGES = ("ResponseComplete", "Panic")
_STAGE_ORDER = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}


@dataclass(frozen=True)
class Gap:
    kind: GapKind
    message: str


def _metadata(body: Any) -> dict[str, Any]:
    meta = body.get("metadata") if isinstance(body, dict) else None
    return meta if isinstance(meta, dict) else {}


def _base_version(event: AuditEvent) -> str | None:
    """The resourceVersion a write was based on (its precondition), if it named one."""
    version = _metadata(event.request_object).get("resourceVersion")
    if not version and event.verb == "update" and isinstance(event.raw, dict):
        ref = event.raw.get("objectRef")
        version = ref.get("resourceVersion") if isinstance(ref, dict) else None
    return str(version) if version else None


def _annotations(event: AuditEvent) -> dict[str, Any]:
    found = event.raw.get("annotations") if isinstance(event.raw, dict) else None
    return found if isinstance(found, dict) else {}


def _representative(stages: Sequence[AuditEvent]) -> AuditEvent:
    """The stage that knows most about a request: ResponseComplete/Panic, else the latest."""
    return max(stages, key=lambda e: (_STAGE_ORDER.get(e.stage, -1), e.stage_at, e.id))


def _request_gaps(event: AuditEvent, stages: Sequence[AuditEvent]) -> list[Gap]:
    gaps: list[Gap] = []
    # A delete's outcome is known from its code; the other writes need their bodies.
    is_write = event.verb in ("create", "update", "patch")
    if not any(s.stage in _FINAL_STAGES for s in stages):
        gaps.append(
            Gap(
                "no_result",
                f"Result not recorded: only the {event.stage} stage is stored (no"
                " ResponseComplete), so whether and how the object changed is unknown.",
            )
        )
    code = event.response_code
    if code is not None and code >= 400:
        reason = f" {event.response_reason}" if event.response_reason else ""
        gaps.append(Gap("failed", f"Request failed ({code}{reason}): the object did not change."))
        return gaps
    annotations = _annotations(event)
    if str(annotations.get(TRUNCATED_ANNOTATION, "")).lower() == "true":
        gaps.append(
            Gap(
                "truncated",
                "Bodies truncated by the API server (audit.k8s.io/truncated): the event was too"
                " large, so what changed is unknown.",
            )
        )
    elif is_write and event.stage in _FINAL_STAGES:
        if event.level in ("None", "Metadata", None):
            gaps.append(
                Gap(
                    "not_recorded",
                    f"Result not recorded: logged at {event.level or 'an unknown'} level, so the"
                    " request and the resulting object are unknown.",
                )
            )
        elif event.level == "Request":
            gaps.append(
                Gap(
                    "not_recorded",
                    "Result not recorded: logged at Request level (responses only at"
                    " RequestResponse), so the resulting object is unknown.",
                )
            )
        elif event.level == "RequestResponse":
            missing = [
                name
                for name, body in (
                    ("request", event.request_object),
                    ("response", event.response_object),
                )
                if body is None
            ]
            if missing:
                gaps.append(
                    Gap(
                        "truncated",
                        f"{' and '.join(missing).capitalize()} body missing at RequestResponse"
                        " level: the API server drops bodies of oversized events.",
                    )
                )
    if event.verb in ("delete", "deletecollection"):
        if event.username == GARBAGE_COLLECTOR:
            gaps.append(
                Gap(
                    "garbage_collector",
                    "Deleted by the garbage collector (cascade: an owner was deleted), not by a"
                    " person; see the owner's history for who.",
                )
            )
        elif event.username == NAMESPACE_CONTROLLER:
            gaps.append(
                Gap(
                    "controller",
                    "Deleted by the namespace controller: its namespace was deleted.",
                )
            )
    return gaps


def gap_markers(
    events: Iterable[AuditEvent], *, previous: AuditEvent | None = None
) -> dict[int, list[Gap]]:
    """Markers per event id for one object's events (any order, stages of a request grouped by
    auditID); previous is the last stored version before the oldest of them, if any.

    A resourceVersion jump: a successful write that names the version it was based on (an
    update's metadata.resourceVersion) differs from the resourceVersion of the last version
    recorded here, so a change in between was not captured. A generation that grows by more than
    one between two recorded versions says the same (each write adds at most one).
    """
    by_request: dict[str, list[AuditEvent]] = {}
    for event in events:
        by_request.setdefault(event.audit_id, []).append(event)
    requests = sorted(
        ((_representative(stages), stages) for stages in by_request.values()),
        key=lambda pair: (pair[0].stage_at, pair[0].id),
    )
    markers: dict[int, list[Gap]] = {}
    last = previous if previous is not None and is_version(previous) else None
    unknown_between = False
    for event, stages in requests:
        gaps = _request_gaps(event, stages)
        succeeded = event.response_code is None or event.response_code < 400
        base = _base_version(event) if succeeded and event.verb in ("update", "patch") else None
        last_meta = _metadata(last.response_object) if last is not None else {}
        last_rv = last_meta.get("resourceVersion")
        if base and last_rv and str(last_rv) != base:
            hint = (
                " (a request above without a recorded result may be that change)"
                if unknown_between
                else ""
            )
            gaps.append(
                Gap(
                    "jump",
                    f"resourceVersion jump: this {event.verb} was based on version {base}, but the"
                    f" last recorded version is {last_rv}: a change between them was not"
                    f" captured{hint}.",
                )
            )
        elif is_version(event) and last is not None and event.verb != "create":
            before, after = (
                last_meta.get("generation"),
                _metadata(event.response_object).get("generation"),
            )
            if isinstance(before, int) and isinstance(after, int) and after > before + 1:
                gaps.append(
                    Gap(
                        "jump",
                        f"generation jumped from {before} to {after}: {after - before - 1} spec"
                        " change(s) between the recorded versions were not captured.",
                    )
                )
        if any(g.kind in ("not_recorded", "no_result", "truncated") for g in gaps):
            unknown_between = True
        if is_version(event):
            last, unknown_between = event, False
        elif event.verb in ("delete", "deletecollection") and (
            event.response_code is not None and event.response_code < 400
        ):
            # Only a delete known to have succeeded ends the record; one without a result
            # leaves the last version standing and the unknown flagged.
            last, unknown_between = None, False
        if gaps:
            markers[event.id] = gaps
            for stage in stages:
                markers[stage.id] = gaps
    return markers


async def event_gaps(
    session: AsyncSession, event: AuditEvent, *, previous: AuditEvent | None
) -> list[Gap]:
    """The markers of one event, judged with its request's other stages and previous, the last
    stored version of its object before it (queries.previous_version, which the caller has)."""
    stages = (
        await session.scalars(
            select(AuditEvent).where(
                AuditEvent.cluster == event.cluster, AuditEvent.audit_id == event.audit_id
            )
        )
    ).all()
    return gap_markers(stages, previous=previous).get(event.id, [])
