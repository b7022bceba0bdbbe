"""Raw audit.k8s.io Event (v1 or v1beta1) -> validated column values, and back (pure, no I/O).

Validation is strict about what the store relies on (identity, stage, time, column types and
index-safe lengths) and lenient about everything else, which stays in the raw JSON.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from app.audit.redact import Redactor

SUPPORTED_API_VERSIONS = ("audit.k8s.io/v1", "audit.k8s.io/v1beta1")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
BODY_KEYS = ("requestObject", "responseObject")

# Kubernetes' own limits are lower (names 253, namespaces 63); these keep every value inside
# PostgreSQL's b-tree entry limit (~2.7 kB) even for 4-byte UTF-8 characters.
MAX_LENGTHS = {
    "auditID": 256,
    "verb": 64,
    "objectRef.resource": 253,
    "objectRef.subresource": 253,
    "objectRef.namespace": 253,
    "objectRef.name": 253,
    "user.username": 512,
    "impersonatedUser.username": 512,
}

# The object-history index holds cluster, resource, namespace and name in one entry.
MAX_OBJECT_KEY_BYTES = 2000
# Go's zero time and the end of the calendar are not request times; they break time arithmetic.
MIN_YEAR, MAX_YEAR = 1970, 9000

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?([Zz]|[+-]\d{2}:?\d{2})$"
)


# Resources that moved out of the legacy `extensions` group: one resource whichever group the
# request named (a NetworkPolicy is the same object through networking.k8s.io or extensions).
_MOVED_FROM_EXTENSIONS = {
    "networkpolicies": "networking.k8s.io",
    "ingresses": "networking.k8s.io",
    "deployments": "apps",
    "daemonsets": "apps",
    "replicasets": "apps",
    "podsecuritypolicies": "policy",
}


def canonical_group(resource: str, api_group: str | None) -> str:
    """The API group a resource lives in today ("" for the core group)."""
    group = api_group or ""
    if group == "extensions":
        return _MOVED_FROM_EXTENSIONS.get(resource, group)
    return group


def group_aliases(resource: str, group: str) -> tuple[str, ...]:
    """Every group name under which requests reach this resource of this (canonical) group."""
    if _MOVED_FROM_EXTENSIONS.get(resource) == group:
        return (group, "extensions")
    return (group,)


class InvalidEvent(ValueError):
    """The item is not a storable audit Event; the message says which field and why.
    is_redacted: whether redaction changed the event in place before the problem was found
    (None: raised before redaction ran)."""

    is_redacted: bool | None = None


def parse_time(value: Any, field: str) -> datetime:
    """RFC 3339 (any fraction digits, any offset) -> UTC datetime, truncated to microseconds."""
    if not isinstance(value, str):
        raise InvalidEvent(f"{field}: expected an RFC 3339 time string, got {_type_name(value)}")
    match = _TIME_RE.match(value)
    if not match:
        raise InvalidEvent(f"{field}: {_clip(value)!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    if offset in ("Z", "z"):
        tz = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if delta >= timedelta(hours=24):
            raise InvalidEvent(f"{field}: {_clip(value)!r} has an impossible UTC offset")
        tz = timezone(sign * delta)
    try:
        parsed = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        ).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidEvent(f"{field}: {_clip(value)!r} is not a valid time ({exc})") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise InvalidEvent(f"{field}: {_clip(value)!r} is outside {MIN_YEAR}..{MAX_YEAR}")
    return parsed


def normalize_event(
    event: Any,
    *,
    cluster: str,
    source: str,
    source_meta: Mapping[str, Any] | None = None,
    redactor: Redactor,
) -> dict[str, Any]:
    """Validate and redact an event (in place) and return the audit_event column values."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"expected an audit Event object, got {_type_name(event)}")
    kind = event.get("kind")
    if kind is not None and kind != "Event":
        raise InvalidEvent(f"kind is {_clip(kind)!r}, expected 'Event'")
    api_version = event.get("apiVersion")
    if api_version is not None and api_version not in SUPPORTED_API_VERSIONS:
        raise InvalidEvent(
            f"unsupported apiVersion {_clip(api_version)!r}"
            f" (accepted: {', '.join(SUPPORTED_API_VERSIONS)}, or none)"
        )
    is_redacted = redactor.redact_event(event)
    try:
        return _columns(
            event, cluster=cluster, source=source, source_meta=source_meta, is_redacted=is_redacted
        )
    except InvalidEvent as exc:
        exc.is_redacted = is_redacted
        raise


def _columns(
    event: dict[str, Any],
    *,
    cluster: str,
    source: str,
    source_meta: Mapping[str, Any] | None,
    is_redacted: bool,
) -> dict[str, Any]:
    audit_id = _required_str(event, "auditID")
    stage = _required_str(event, "stage")
    if stage not in STAGES:
        raise InvalidEvent(f"stage: {_clip(stage)!r} is not one of {', '.join(STAGES)}")
    verb = _required_str(event, "verb")
    level = _optional_str(event, "level")
    if level is not None and level not in LEVELS:
        raise InvalidEvent(f"level: {_clip(level)!r} is not one of {', '.join(LEVELS)}")

    # v1beta1 from Kubernetes <= 1.9 has only `timestamp`; it is the stage time there.
    fallback = event.get("timestamp")
    stage_raw = event.get("stageTimestamp", fallback)
    if stage_raw is None:
        raise InvalidEvent("stageTimestamp: missing (and no v1beta1 'timestamp' to use instead)")
    stage_at = parse_time(stage_raw, "stageTimestamp")
    received_raw = event.get("requestReceivedTimestamp", fallback)
    requested_at = (
        None if received_raw is None else parse_time(received_raw, "requestReceivedTimestamp")
    )

    user = _optional_obj(event, "user")
    impersonated = _optional_obj(event, "impersonatedUser")
    object_ref = _optional_obj(event, "objectRef")
    status = _optional_obj(event, "responseStatus")
    annotations = _optional_obj(event, "annotations")
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise InvalidEvent(f"annotations.{_clip(key)}: expected a string")

    api_group = _optional_str(object_ref, "apiGroup", "objectRef")
    api_version_ref = _optional_str(object_ref, "apiVersion", "objectRef")
    if api_group is None and api_version_ref and "/" in api_version_ref:
        # audit.k8s.io/v1alpha1 wrote "group/version" into apiVersion.
        api_group, _, api_version_ref = api_version_ref.rpartition("/")

    code = status.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise InvalidEvent(f"responseStatus.code: expected an integer, got {_type_name(code)}")
    if code is not None and not 0 <= code <= 999:
        raise InvalidEvent(f"responseStatus.code: {code} is outside 0..999")

    columns: dict[str, Any] = {
        "cluster": cluster,
        "audit_id": audit_id,
        "stage": stage,
        "level": level,
        "verb": verb,
        "request_uri": _optional_str(event, "requestURI"),
        "api_group": api_group,
        "api_version": api_version_ref,
        "resource": _optional_str(object_ref, "resource", "objectRef"),
        "subresource": _optional_str(object_ref, "subresource", "objectRef"),
        "namespace": _optional_str(object_ref, "namespace", "objectRef"),
        "name": _optional_str(object_ref, "name", "objectRef")
        or _created_name(event, verb, object_ref),
        "username": _optional_str(user, "username", "user"),
        "user_uid": _optional_str(user, "uid", "user"),
        "user_groups": _optional_str_list(user, "groups", "user"),
        "impersonated_user": _optional_str(impersonated, "username", "impersonatedUser"),
        "impersonated_groups": _optional_str_list(impersonated, "groups", "impersonatedUser"),
        "source_ips": _optional_str_list(event, "sourceIPs"),
        "user_agent": _optional_str(event, "userAgent"),
        "response_code": code,
        "response_status": _optional_str(status, "status", "responseStatus"),
        "response_reason": _optional_str(status, "reason", "responseStatus"),
        "response_message": _optional_str(status, "message", "responseStatus"),
        "authz_decision": annotations.get("authorization.k8s.io/decision"),
        "authz_reason": annotations.get("authorization.k8s.io/reason"),
        "requested_at": requested_at,
        "stage_at": stage_at,
        "source": source,
        "source_meta": dict(source_meta) if source_meta else None,
        "is_redacted": is_redacted,
    }
    for field, limit in MAX_LENGTHS.items():
        value = _value_at(event, field)
        if isinstance(value, str) and len(value) > limit:
            raise InvalidEvent(f"{field}: longer than {limit} characters ({len(value)})")
    # surrogatepass: a lone surrogate is refused later, when prepare_batch serialises the row.
    object_bytes = sum(
        len((columns[key] or "").encode("utf-8", "surrogatepass"))
        for key in ("cluster", "resource", "namespace", "name")
    )
    if object_bytes > MAX_OBJECT_KEY_BYTES:
        raise InvalidEvent(
            f"objectRef: resource, namespace and name together exceed {MAX_OBJECT_KEY_BYTES}"
            f" bytes of UTF-8 ({object_bytes})"
        )
    bodies = {key: event[key] for key in BODY_KEYS if event.get(key) is not None}
    columns["request_object"] = bodies.get("requestObject")
    columns["response_object"] = bodies.get("responseObject")
    columns["raw"] = {k: v for k, v in event.items() if k not in bodies}
    return columns


def _created_name(event: Mapping[str, Any], verb: str, object_ref: Mapping[str, Any]) -> str | None:
    """A create's objectRef has no name yet (the server may generate it): take it from the
    response, else the request, so that filters and object history find the object."""
    if verb != "create" or object_ref.get("subresource") is not None:
        return None
    for key in ("responseObject", "requestObject"):
        body = event.get(key)
        metadata = body.get("metadata") if isinstance(body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(name, str) and 0 < len(name) <= MAX_LENGTHS["objectRef.name"]:
            return name
    return None


def reconstruct_event(
    raw: Mapping[str, Any], request_object: Any | None, response_object: Any | None
) -> dict[str, Any]:
    """The stored event as received (JSON-equal to the input, secrets redacted)."""
    event = dict(raw)
    if request_object is not None:
        event["requestObject"] = request_object
    if response_object is not None:
        event["responseObject"] = response_object
    return event


def _value_at(event: Mapping[str, Any], dotted: str) -> Any:
    value: Any = event
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _required_str(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    if value is None:
        raise InvalidEvent(f"{key}: missing")
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{key}: expected a non-empty string, got {_type_name(value)}")
    return value


def _optional_str(obj: Mapping[str, Any], key: str, parent: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    where = f"{parent}.{key}" if parent else key
    raise InvalidEvent(f"{where}: expected a string, got {_type_name(value)}")


def _optional_str_list(obj: Mapping[str, Any], key: str, parent: str = "") -> list[str] | None:
    value = obj.get(key)
    where = f"{parent}.{key}" if parent else key
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidEvent(f"{where}: expected a list of strings")
    return value


def _optional_obj(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"{key}: expected an object, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _clip(value: Any, limit: int = 80) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
