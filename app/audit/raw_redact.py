"""Secret values out of bytes that are not valid JSON (truncated, NaN, stray bytes, too deep).

A tolerant byte-level scan: it tracks keys and nesting as far as the bytes allow and replaces
every value under a secret-bearing key, to the end of the data if it is cut. When the bytes
do not read as damaged JSON (bare words, stray closers), it refuses and the caller keeps the
bytes only encrypted. Pure; no JSON parser involved.
"""

from __future__ import annotations

import json
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
# A string value that holds JSON with a secret-bearing key (a last-applied annotation whose
# own key was damaged): redacted whole.
_EMBEDDED_SECRET: Final = re.compile(rb'\\"(?:data|stringData|token|password)\\"\s*:')


class UnsafeToScan(ValueError):
    """The bytes do not read as (damaged) JSON, so secrets could hide outside the scan."""


# What a container expects next.
_KEY_OR_END, _KEY, _COLON, _VALUE, _VALUE_OR_END, _COMMA_OR_END = range(6)


@dataclass
class _Frame:
    is_object: bool
    is_secret: bool
    expects: int
    key: bytes | None = None


def redact_raw(data: bytes, marker: Callable[[str], str]) -> tuple[bytes, bool]:
    """data with every secret value replaced by marker(value text); True when anything was.

    The scan follows JSON's grammar strictly and tolerates only what damage leaves behind:
    the data ending anywhere, NaN/Infinity, and bytes that are no UTF-8 inside strings.
    Anything else (a stray byte, quote or comma that would let a value pass for a key) raises
    UnsafeToScan: the caller then keeps no clear copy at all."""
    out: list[bytes] = []
    stack: list[_Frame] = []
    top_done = False
    changed = False

    def begin_value() -> bool:
        """Check that a value may start here; return whether it is secret."""
        nonlocal top_done
        if not stack:
            if top_done:
                raise UnsafeToScan("more than one value")
            return False
        frame = stack[-1]
        if frame.expects not in (_VALUE, _VALUE_OR_END):
            raise UnsafeToScan("a value where JSON has none")
        return frame.is_secret or (frame.is_object and frame.key in SECRET_KEYS)

    def end_value() -> None:
        nonlocal top_done
        if stack:
            stack[-1].expects = _COMMA_OR_END
        else:
            top_done = True

    position = 0
    for match in _TOKEN.finditer(data):
        if match.start() != position:
            raise UnsafeToScan("unreadable bytes between tokens")
        position = match.end()
        kind, token = match.lastgroup, match.group()
        if kind == "space":
            out.append(token)
            continue
        frame = stack[-1] if stack else None
        if kind in ("string", "cut") and frame is not None and frame.expects in (_KEY, _KEY_OR_END):
            frame.key, frame.expects = _key_name(token, is_cut=kind == "cut"), _COLON
            out.append(token)
        elif kind in ("string", "cut", "word"):
            if kind == "word" and not _WORD.fullmatch(token):
                raise UnsafeToScan("a bare word that is no JSON value")
            if begin_value() or (kind != "word" and _EMBEDDED_SECRET.search(token)):
                out.append(b'"' + marker(token.decode("utf-8", "replace")).encode() + b'"')
                changed = True
            else:
                out.append(token)
            end_value()
        elif token in (b"{", b"["):
            is_secret = begin_value()
            is_object = token == b"{"
            stack.append(_Frame(is_object, is_secret, _KEY_OR_END if is_object else _VALUE_OR_END))
            out.append(token)
        elif token in (b"}", b"]"):
            ends = (_KEY_OR_END, _COMMA_OR_END) if token == b"}" else (_VALUE_OR_END, _COMMA_OR_END)
            if frame is None or frame.is_object != (token == b"}") or frame.expects not in ends:
                raise UnsafeToScan("a closing bracket out of place")
            stack.pop()
            out.append(token)
            end_value()
        elif token == b":":
            if frame is None or frame.expects != _COLON:
                raise UnsafeToScan("a colon out of place")
            frame.expects = _VALUE
            out.append(token)
        else:  # ","
            if frame is None or frame.expects != _COMMA_OR_END:
                raise UnsafeToScan("a comma out of place")
            frame.expects, frame.key = (_KEY, None) if frame.is_object else (_VALUE, None)
            out.append(token)
    if position != len(data):
        raise UnsafeToScan("unreadable bytes at the end")
    return b"".join(out), changed


def _key_name(token: bytes, *, is_cut: bool) -> bytes:
    """A key as its UTF-8 bytes. A damaged key (bad bytes, bad escape) could be a secret
    field's name that no longer matches: not safe to scan past."""
    if is_cut:
        return b""  # the data ends inside the key: no value follows
    try:
        name = json.loads(token.decode("utf-8"))
    except ValueError:
        raise UnsafeToScan("a key that is not a valid JSON string") from None
    return str(name).encode("utf-8", "surrogatepass")
