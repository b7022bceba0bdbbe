"""Secret redaction before storage: values become keyed-hash markers, keys and shape stay.

Covers Secret data/stringData and their last-applied annotation (objects, lists, patches),
TokenReview/TokenRequest tokens, and configured extra paths. Pure; mutates what it is given.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from app.audit.seal import Sealer

# Matched with fullmatch (a whole value) or search/sub (inside a longer string).
MARKER_RE = re.compile(r"\[redacted:hmac-sha256:[0-9a-f]{32}\]")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_FIELDS = ("data", "stringData")
# JSON-pointer prefixes of secret values inside a JSON patch on a Secret.
_SECRET_PATCH_PATHS = ("/data", "/stringData")
_LAST_APPLIED_POINTER = "/metadata/annotations/" + LAST_APPLIED.replace("~", "~0").replace(
    "/", "~1"
)


def is_marker(value: Any) -> bool:
    """True when value is a redaction marker."""
    return isinstance(value, str) and MARKER_RE.fullmatch(value) is not None


class Redactor:
    def __init__(self, key: bytes, extra_paths: Sequence[str] = ()) -> None:
        if len(key) < 16:
            raise ValueError("redaction key must be at least 16 bytes")
        self._key = key
        # Quarantined bytes that cannot be redacted are kept sealed with a key derived from this.
        self.sealer = Sealer(key)
        self._extra_paths = [tuple(p.split(".")) for p in extra_paths if p]

    def marker(self, value: Any) -> str:
        """Stand-in for a secret value: equal values give equal markers, the value stays unknown."""
        if is_marker(value):
            return str(value)
        canonical = json.dumps(value, sort_keys=True, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
        digest = hmac.new(self._key, canonical, hashlib.sha256).hexdigest()[:32]
        return f"[redacted:hmac-sha256:{digest}]"

    def redact_event(self, event: Any) -> bool:
        """Redact secret values in an event-shaped dict in place; True when anything changed."""
        if not isinstance(event, dict):
            return False
        changed = False
        ref = event.get("objectRef")
        ref = ref if isinstance(ref, dict) else {}
        resource, subresource = ref.get("resource"), ref.get("subresource")
        is_core = ref.get("apiGroup") in (None, "", "core")
        for key in ("requestObject", "responseObject"):
            body = event.get(key)
            if body is None:
                continue
            if is_core and resource == "secrets" and subresource is None:
                changed |= self._redact_secret_body(body)
            if resource == "tokenreviews" and isinstance(body, dict):
                changed |= self._redact_path(body, ("spec", "token"))
                changed |= self._redact_path(body, ("status", "token"))
            if subresource == "token" and isinstance(body, dict):
                changed |= self._redact_path(body, ("status", "token"))
            changed |= self._redact_by_kind(body)
        for path in self._extra_paths:
            changed |= self._redact_path(event, path)
        return changed

    def _redact_by_kind(self, body: Any) -> bool:
        """Walk the body (iteratively: bodies can nest deeply) and redact objects by kind."""
        try:
            # One C pass rules out most bodies instead of a walk through every node: orjson
            # escapes only quotes, backslashes and control characters, so a string "Secret",
            # "TokenReview" or "TokenRequest" anywhere in body appears as such in text.
            text = orjson.dumps(body)
        except TypeError:  # what orjson refuses (big integers, lone surrogates): walk
            pass
        else:
            if b'"Secret"' not in text and b'"Token' not in text:
                return False
        changed = False
        stack: list[Any] = [body]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
                continue
            if not isinstance(node, dict):
                continue
            kind = node.get("kind")
            if kind == "Secret":
                changed |= self._redact_secret_object(node)
            elif kind == "TokenReview":
                changed |= self._redact_path(node, ("spec", "token"))
                changed |= self._redact_path(node, ("status", "token"))
            elif kind == "TokenRequest":
                changed |= self._redact_path(node, ("status", "token"))
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        return changed

    def _redact_secret_body(self, body: Any) -> bool:
        """A body on the secrets resource: object, merge/apply patch, list or JSON patch."""
        if isinstance(body, dict):
            changed = self._redact_secret_object(body)
            items = body.get("items")
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict):
                        changed |= self._redact_secret_object(item)
            return changed
        if isinstance(body, list):
            return self._redact_json_patch(body)
        return False

    def _redact_secret_object(self, obj: dict[str, Any]) -> bool:
        changed = False
        for field in _SECRET_FIELDS:
            value = obj.get(field)
            if isinstance(value, dict):
                for key, item in value.items():
                    if item is not None and not is_marker(item):
                        value[key] = self.marker(item)
                        changed = True
            elif value is not None and not is_marker(value):
                obj[field] = self.marker(value)
                changed = True
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            annotations = metadata.get("annotations")
            if isinstance(annotations, dict):
                last_applied = annotations.get(LAST_APPLIED)
                if last_applied is not None and not is_marker(last_applied):
                    annotations[LAST_APPLIED] = self.marker(last_applied)
                    changed = True
        return changed

    def _redact_json_patch(self, ops: Iterable[Any]) -> bool:
        changed = False
        for op in ops:
            if not isinstance(op, dict) or "value" not in op:
                continue
            path = op.get("path")
            if not isinstance(path, str):
                continue
            value = op["value"]
            if path in _SECRET_PATCH_PATHS and isinstance(value, dict):
                for key, item in value.items():
                    if item is not None and not is_marker(item):
                        value[key] = self.marker(item)
                        changed = True
            elif path.startswith(tuple(p + "/" for p in _SECRET_PATCH_PATHS)) or (
                path == _LAST_APPLIED_POINTER
            ):
                if value is not None and not is_marker(value):
                    op["value"] = self.marker(value)
                    changed = True
            elif path in _SECRET_PATCH_PATHS and value is not None and not is_marker(value):
                op["value"] = self.marker(value)
                changed = True
            elif path in ("", "/", "/metadata", "/metadata/annotations") and isinstance(
                value, dict
            ):
                # A whole object or metadata replaced through a JSON patch.
                wrapper = {"metadata": value} if path == "/metadata" else value
                if path == "/metadata/annotations":
                    wrapper = {"metadata": {"annotations": value}}
                changed |= self._redact_secret_object(wrapper)
        return changed

    def _redact_path(self, node: Any, path: tuple[str, ...]) -> bool:
        """Replace every value matching path (`*` = any key or index) with its marker."""
        if not path:
            return False
        head, rest = path[0], path[1:]
        keys: list[Any]
        if isinstance(node, dict):
            keys = list(node) if head == "*" else ([head] if head in node else [])
        elif isinstance(node, list) and (head == "*" or head.isdigit()):
            indexes = list(range(len(node))) if head == "*" else [int(head)]
            keys = [k for k in indexes if k < len(node)]
        else:
            return False
        changed = False
        for key in keys:
            child = node[key]
            if rest:
                changed |= self._redact_path(child, rest)
            elif child is not None and not is_marker(child):
                node[key] = self.marker(child)
                changed = True
        return changed
