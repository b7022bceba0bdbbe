"""Media-type negotiation with Elasticsearch 7.x and 8.x from the 9.x Python client.

The client asks for `compatible-with=9`; an 8.x server answers 406/400 to that, and a 7.x
server does not know the vendor media types. The transport here rewrites them once the
server's major version is known (plain JSON until then, which every version accepts).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from elastic_transport import AsyncTransport, HttpHeaders, TransportApiResponse
from elastic_transport.client_utils import DEFAULT, DefaultType

_VENDOR_RE = re.compile(r"application/vnd\.elasticsearch\+([a-z0-9.-]+);\s*compatible-with=\d+")


def compat_media_type(value: str, server_major: int | None) -> str:
    """Rewrite the client's vendor media type for a server of this major version."""
    if server_major is None or server_major < 8:
        return _VENDOR_RE.sub(r"application/\1", value)
    if server_major == 8:
        return _VENDOR_RE.sub(r"application/vnd.elasticsearch+\1; compatible-with=8", value)
    return value


def compat_headers(headers: Mapping[str, str], server_major: int | None) -> HttpHeaders:
    """A copy of headers with Accept and Content-Type rewritten for the server."""
    result = HttpHeaders(headers)
    for name in ("accept", "content-type"):
        value = result.get(name)
        if value:
            result[name] = compat_media_type(value, server_major)
    return result


def parse_major(version: str) -> int | None:
    """The major version of "7.17.29" (None when unreadable)."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


class CompatTransport(AsyncTransport):
    """AsyncTransport that adapts media types to `server_major` (set after GET /)."""

    server_major: int | None = None

    async def perform_request(  # type: ignore[override]
        self,
        method: str,
        target: str,
        *,
        headers: Mapping[str, Any] | DefaultType = DEFAULT,
        **kwargs: Any,
    ) -> TransportApiResponse:
        if headers is not DEFAULT:
            headers = compat_headers(headers, self.server_major)
        return await super().perform_request(method, target, headers=headers, **kwargs)
