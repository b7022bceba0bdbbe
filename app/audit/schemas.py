"""Pydantic shapes at the edges: the timeline filter, events out, pages, ingest results.

One TimelineFilter serves the JSON API, the exports and the HTML timeline.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.audit.models import AuditEvent
from app.audit.normalize import STAGES
from app.errors import InvalidFilter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_RE = re.compile(r"^(success|failure|[1-5]xx|[1-5]\d\d)$")


# Verbs that change objects: what the dashboard shows unless reads are included.
CHANGE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
Window = Literal["15m", "1h", "24h", "7d", "30d"]
WINDOWS: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


TIME_HELP = "2026-11-28, 2026-11-28 17:05 or 2026-11-28T17:05:31Z; UTC unless a zone is given"


def parse_time_input(value: str) -> datetime:
    """A time as people type it: a date (midnight), date and time with or without seconds,
    fraction and zone (Z, +01:00, or a trailing "UTC"); no zone means UTC."""
    text = value.strip()
    if text.upper().endswith(" UTC"):
        text = text[:-4].rstrip()
    if len(text) < 10 or not text[:4].isdigit():
        raise ValueError(f"not a date or time: use {TIME_HELP}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date or time: use {TIME_HELP}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _drop_blank(values: list[str]) -> list[str]:
    # Plain GET forms send empty values for "any": they filter nothing.
    return [v.strip() for v in values if v and v.strip()]


class TimeBounds(BaseModel):
    """A [since, until) window read from a query: both UTC, since first, blank means unset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        try:
            return value.astimezone(UTC) if value is not None else None
        except OverflowError:
            raise ValueError("out of range once converted to UTC") from None

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be earlier than until")
        return self


class TimelineFilter(TimeBounds):
    """Which events to show; every list filter is an OR of its values, filters AND together."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: list[str] = Field(
        default_factory=list,
        description="Resource (plural, e.g. `pods`, `networkpolicies` — either API group). "
        "`pods/exec` selects a subresource, `pods/*` a resource with all its subresources.",
        max_length=50,
    )
    namespace: list[str] = Field(default_factory=list, max_length=50)
    user: list[str] = Field(
        default_factory=list,
        description="Username; matches the user or the impersonated user. A value ending in "
        "`*` is a prefix: `system:serviceaccount:kube-system:*` is every service account of "
        "kube-system.",
        max_length=50,
    )
    group: list[str] = Field(
        default_factory=list,
        description="User group (e.g. `system:masters`); matches the groups of the user or of "
        "the impersonated user.",
        max_length=50,
    )
    verb: list[str] = Field(default_factory=list, max_length=20)
    cluster: list[str] = Field(default_factory=list, max_length=50)
    stage: list[str] = Field(
        default_factory=list,
        description="Audit stage (`RequestReceived`, `ResponseStarted`, `ResponseComplete`, "
        "`Panic`). With `per=request` it selects by the request's most complete stage.",
        max_length=4,
    )
    per: Literal["request", "stage"] | None = Field(
        default=None,
        description="`stage`: one item per stored stage-event (the API's default). `request`: "
        "one item per request (cluster + auditID), its most complete stage (Panic > "
        "ResponseComplete > ResponseStarted > RequestReceived), as the dashboard shows them.",
    )
    since: AwareDatetime | None = Field(
        default=None, description="Inclusive; RFC 3339, or " + TIME_HELP
    )
    until: AwareDatetime | None = Field(
        default=None, description="Exclusive; RFC 3339, or " + TIME_HELP
    )
    status: str | None = Field(
        default=None,
        description="`success` (code < 400), `failure` (code >= 400), a class such as "
        "`4xx`, or an exact code such as `403`.",
    )
    window: Window | None = Field(
        default=None,
        description="Relative time range ending now (`15m`, `1h`, `24h`, `7d`, `30d`); "
        "combines with `since`/`until` (both apply).",
    )
    include_reads: bool | None = Field(
        default=None,
        description="`false`: only changes (create, update, patch, delete) unless `verb` is "
        "given. Unset: the API returns every verb; the dashboard shows changes only.",
    )
    q: str | None = Field(default=None, max_length=253, description="Object-name substring")
    cursor: str | None = Field(default=None, max_length=200, description="From next_cursor")
    limit: int = Field(default=50, ge=1, le=1000)

    @field_validator("resource", "namespace", "user", "group", "verb", "cluster", "stage")
    @classmethod
    def _clean_lists(cls, values: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(_drop_blank(values)))
        if any(len(v) > 512 for v in cleaned):
            raise ValueError("each value must be at most 512 characters")
        if any("\x00" in v for v in cleaned):
            raise ValueError("must not contain NUL characters")
        return cleaned

    @field_validator("stage")
    @classmethod
    def _stage(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in STAGES]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not one of {', '.join(STAGES)}")
        return values

    @field_validator("user")
    @classmethod
    def _user(cls, values: list[str]) -> list[str]:
        if any(v.endswith("*") and not v.rstrip("*") for v in values):
            raise ValueError("a prefix needs at least one character before '*'")
        return values

    @field_validator("status")
    @classmethod
    def _status(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().lower()
        if not _STATUS_RE.match(value):
            raise ValueError(
                "must be 'success', 'failure', a class like '4xx', or a code like '403'"
            )
        return value

    @field_validator("q")
    @classmethod
    def _q(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value.strip() or None if value is not None else None

    @field_validator("window", "include_reads", "since", "until", "per", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        # A plain GET form sends window= for "all time".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _typed_time(cls, value: object) -> object:
        if isinstance(value, str) and value.strip():
            return parse_time_input(value)
        return value

    def effective_since(self, now: datetime) -> datetime | None:
        """The lower time bound after applying `window` relative to now."""
        bounds = [b for b in (self.since, now - WINDOWS[self.window] if self.window else None) if b]
        return max(bounds) if bounds else None

    def is_per_request(self) -> bool:
        """True when each request is one item (its most complete stage)."""
        return self.per == "request"

    def is_changes_only(self) -> bool:
        """True when only change verbs are selected by the reads switch."""
        return self.include_reads is False and not self.verb


class Cursor(BaseModel):
    """Keyset position: the (stage_at, id) of the last row of the previous page."""

    stage_at: datetime
    id: int

    def encode(self) -> str:
        """Opaque, URL-safe form."""
        micros = (self.stage_at - _EPOCH) // timedelta(microseconds=1)
        text = f"v1:{micros}:{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Parse a token from encode(); raise InvalidFilter for anything else."""
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            version, micros, row_id = text.split(":")
            if version != "v1":
                raise ValueError(version)
            stage_at = _EPOCH + timedelta(microseconds=int(micros))
            if not 0 < int(row_id) < 2**63:
                raise ValueError(row_id)
            return cls(stage_at=stage_at, id=int(row_id))
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            raise InvalidFilter(
                "cursor: not a cursor returned by this API (use next_cursor as given)"
            ) from None


class UserOut(BaseModel):
    username: str | None
    uid: str | None = None
    groups: list[str] | None = None


class AuditEventOut(BaseModel):
    """An event as listed: the queryable columns, no bodies."""

    id: int
    cluster: str
    audit_id: str
    stage: str
    level: str | None
    verb: str
    request_uri: str | None
    api_group: str | None
    api_version: str | None
    resource: str | None
    subresource: str | None
    namespace: str | None
    name: str | None
    user: UserOut
    impersonated_user: UserOut | None
    source_ips: list[str] | None
    user_agent: str | None
    response_code: int | None
    response_status: str | None
    response_reason: str | None
    response_message: str | None
    authz_decision: str | None
    authz_reason: str | None
    requested_at: datetime | None
    stage_at: datetime
    source: str
    url: str


class FieldChangeOut(BaseModel):
    """One changed field; values are short display text, a secret's only as "redacted"."""

    path: str = Field(description='Display path, e.g. data.LOG_LEVEL or metadata.labels["a/b"]')
    change: Literal["added", "removed", "changed"]
    before: str | None
    after: str | None
    is_redacted: bool = Field(description="A redacted value: compared by its keyed hash")


class ChangeOut(BaseModel):
    """What the event did to its object, as far as the stored events tell."""

    outcome: Literal[
        "created",
        "changed",
        "unchanged",
        "deleted",
        "failed",
        "read",
        "not_recorded",
        "no_previous",
    ] = Field(
        description="not_recorded: the event changed or may have changed the object but its "
        "result was not recorded (never reported as unchanged); no_previous: the result is "
        "known but no earlier version is stored"
    )
    label: str
    summary: str = Field(description="One line: the changed fields, or the outcome in words")
    note: str
    gap_note: str | None = None
    is_computed: bool = Field(
        description="The resulting version was computed from a JSON or merge patch applied to "
        "the previous stored version, not recorded"
    )
    patch_kind: str | None
    previous_event_id: int | None = Field(description="The event holding the previous version")
    unrecorded_changes_before: int = Field(
        description="Changes without a recorded result between the previous version and this"
    )
    fields: list[FieldChangeOut]


class AuditEventDetail(AuditEventOut):
    """One event whole: bodies, transport metadata, the event as received and its change."""

    request_object: Any | None
    response_object: Any | None
    source_meta: dict[str, Any] | None
    ingested_at: datetime
    event: dict[str, Any] = Field(description="The event as received (secret values redacted)")
    change: ChangeOut


class EventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None


class FacetValue(BaseModel):
    value: str
    count: int


class FacetSample(BaseModel):
    newest: int = Field(description="The counts cover only this many newest matching events")
    matching: int | None = Field(description="How many events matched in all (null: unknown)")


class FacetCounts(BaseModel):
    """Per facet, its most frequent values among the events matching all the *other* filters
    (so a picker shows the alternatives). Counts are exact over every matching event, except
    for the facets listed in `sampled`: there more events matched than are counted row by row
    (namespace, resource, user and group are kept by no rollup), and the counts cover the
    newest `newest` only."""

    sampled: dict[str, FacetSample]
    facets: dict[str, list[FacetValue]]


class QuarantinedOut(BaseModel):
    """An item that was not stored as an event, and why. `raw` is the received bytes as text
    (secret values redacted, also in bytes that did not parse), cut at 4 KiB. `is_sealed`: the
    received bytes are kept encrypted (GET .../{id}/raw, admin) and `raw` is only the redacted
    copy, empty when the bytes could not be scanned for secrets."""

    id: int
    cluster: str | None
    source: str
    origin: str | None
    error: str
    received_at: datetime
    is_redacted: bool
    is_sealed: bool = False
    size: int
    raw: str


class QuarantinePage(BaseModel):
    items: list[QuarantinedOut]
    next_cursor: str | None


class IngestResult(BaseModel):
    stored: int
    duplicates: int
    quarantined: int


def event_out(row: AuditEvent) -> AuditEventOut:
    """The listing shape of a stored event."""
    return AuditEventOut(**event_fields(row))


def event_fields(row: AuditEvent) -> dict[str, object]:
    """The columns of a stored event as the API and the dashboard show them."""
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
