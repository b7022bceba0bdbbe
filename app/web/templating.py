"""The Jinja2 environment (autoescape on) and the display filters the templates use.

Templates are the only place that turns stored UTC times into text for people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import PROJECT_DIR
from app.audit.schemas import CHANGE_VERBS, TimelineFilter

TEMPLATES_DIR = PROJECT_DIR / "templates"
STATIC_DIR = PROJECT_DIR / "static"


def format_ts(value: datetime | None) -> str:
    """Exact UTC time with milliseconds, e.g. 2026-11-20 10:00:00.004 UTC."""
    if value is None:
        return ""
    at = value.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d} UTC"


def format_iso(value: datetime | None) -> str:
    """RFC 3339 in UTC with a Z, as the filters and <time datetime> take it."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_plain(value: datetime | None, *, seconds: bool = False) -> str:
    """UTC time as people type it: 2026-11-28 17:05:31 (the fraction only when there is one
    and seconds is False)."""
    if value is None:
        return ""
    at = value.astimezone(UTC)
    text = at.strftime("%Y-%m-%d %H:%M:%S")
    return text if seconds or not at.microsecond else f"{text}.{at.microsecond:06d}"


STAGE_LABELS = {
    "RequestReceived": "received",
    "ResponseStarted": "started",
    "ResponseComplete": "complete",
    "Panic": "panic",
}


def stage_label(stage: str) -> str:
    """Short name of an audit stage for the timeline's stage badges."""
    return STAGE_LABELS.get(stage, stage)


def format_relative(value: datetime | None, now: datetime | None = None) -> str:
    """Coarse time relative to now: "just now", "5 min ago", "3 h ago", "12 d ago"."""
    if value is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 45:
        return "just now"
    day = 86400
    for limit, unit, size in (
        (3600, "min", 60),
        (day, "h", 3600),
        (day * 60, "d", day),
        (day * 730, "mo", day * 30.44),
        (float("inf"), "y", day * 365.25),
    ):
        if seconds < limit:
            amount = round(seconds / size)
            return f"in {amount} {unit}" if future else f"{amount} {unit} ago"
    return ""


def verb_class(verb: str | None) -> str:
    """CSS class of a verb badge: changes each get their own colour, reads are muted."""
    if verb in CHANGE_VERBS:
        return f"verb verb-{verb}"
    return "verb verb-read"


def code_class(code: int | None) -> str:
    """CSS class of a response code: failures stand out."""
    if code is None:
        return "code code-none"
    if code >= 500:
        return "code code-error"
    if code >= 400:
        return "code code-fail"
    return "code code-ok"


def path_segment(value: str) -> str:
    """Percent-encode one URL path segment (slashes too)."""
    return quote(value, safe="")


def filter_params(f: TimelineFilter, **overrides: Any) -> list[tuple[str, str]]:
    """The filter as query parameters (defaults left out); overrides replace fields."""
    data = f.model_dump(mode="json", exclude_defaults=True)
    data.update(overrides)
    params: list[tuple[str, str]] = []
    for key, value in data.items():
        if value is None or value == [] or value == "":
            continue
        for item in value if isinstance(value, list) else [value]:
            text = str(item).lower() if isinstance(item, bool) else str(item)
            params.append((key, text))
    return params


def filter_query(f: TimelineFilter, **overrides: Any) -> str:
    """The filter as a query string (no leading '?')."""
    return urlencode(filter_params(f, **overrides))


def _make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ts=format_ts,
        iso=format_iso,
        reltime=format_relative,
        plain_ts=format_plain,
        stage_label=stage_label,
        verb_class=verb_class,
        code_class=code_class,
        path_segment=path_segment,
    )
    env.globals.update(filter_query=filter_query, change_verbs=CHANGE_VERBS)
    return env


@lru_cache(maxsize=1)
def get_templates() -> Jinja2Templates:
    """The shared template renderer (built on first use, not at import)."""
    return Jinja2Templates(env=_make_environment())
