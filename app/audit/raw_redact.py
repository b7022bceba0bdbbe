"""Secret values out of bytes that are not valid JSON (truncated, NaN, stray bytes, too deep).

A tolerant byte-level scan: it tracks keys and nesting as far as the bytes allow and replaces
every value under a secret-bearing key, to the end of the data if it is cut. When the bytes
do not read as damaged JSON (bare words, stray closers), it refuses and the caller keeps the
bytes only encrypted. Pure; no JSON parser involved.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from app.audit.redact import LAST_APPLIED

# Keys whose whole value is secret wherever they appear in a quarantined item: Secret
# data/stringData, the last-applied annotation (a copy of the Secret), TokenReview/TokenRequest
# tokens, and JSON-patch `value`s (a patch on /data/... carries the secret there). A damaged
# item cannot tell us its kind reliably, so these are redacted in every object.
SECRET_KEYS: Final = frozenset(
    {b"data", b"stringData", b"token", b"value", LAST_APPLIED.encode(), b"password"}
)
_TOKEN: Final = re.compile(
    rb'(?P<string>"(?:[^"\\]|\\.)*")'
    rb'|(?P<cut>"(?:[^"\\]|\\.)*\\?\Z)'
    rb"|(?P<punct>[\[\]{},:])"
    rb"|(?P<space>[ \t\r\n]+)"
    rb'|(?P<word>[^"\[\]{},: \t\r\n]+)',
    re.DOTALL,
)
_WORD: Final = re.compile(rb"-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null|-?NaN|-?Infinity")


class UnsafeToScan(ValueError):
    """The bytes do not read as (damaged) JSON, so secrets could hide outside the scan."""


@dataclass
class _Frame:
    is_object: bool
    is_secret: bool
    key: bytes | None = None
    expects_key: bool = True


def redact_raw(data: bytes, marker: Callable[[str], str]) -> tuple[bytes, bool]:
    """data with every secret value replaced by marker(value text); True when anything was.
    Raise UnsafeToScan when the bytes cannot be scanned with confidence."""
    out: list[bytes] = []
    stack: list[_Frame] = []
    changed = False

    def in_secret_value() -> bool:
        if not stack:
            return False
        top = stack[-1]
        if top.is_secret:
            return True
        return top.is_object and not top.expects_key and top.key in SECRET_KEYS

    position = 0
    for match in _TOKEN.finditer(data):
        if match.start() != position:
            raise UnsafeToScan("unreadable bytes between tokens")
        position = match.end()
        kind, token = match.lastgroup, match.group()
        if kind in ("string", "cut", "word"):
            if kind == "word" and not _WORD.fullmatch(token):
                raise UnsafeToScan("a bare word that is no JSON value")
            top = stack[-1] if stack else None
            if top is not None and top.is_object and top.expects_key and kind == "string":
                top.key = token[1:-1]
                out.append(token)
                continue
            if in_secret_value():
                value = token.decode("utf-8", "replace")
                out.append(b'"' + marker(value).encode() + b'"')
                changed = True
            else:
                out.append(token)
        elif kind == "punct":
            out.append(token)
            if token in (b"{", b"["):
                stack.append(_Frame(is_object=token == b"{", is_secret=in_secret_value()))
            elif token in (b"}", b"]"):
                if not stack or stack[-1].is_object != (token == b"}"):
                    raise UnsafeToScan("a closing bracket that closes nothing open")
                stack.pop()
            elif token == b":" and stack and stack[-1].is_object:
                stack[-1].expects_key = False
            elif token == b"," and stack and stack[-1].is_object:
                stack[-1].expects_key, stack[-1].key = True, None
        else:
            out.append(token)
    if position != len(data):
        raise UnsafeToScan("unreadable bytes at the end")
    return b"".join(out), changed
