"""Host and Origin checks: no DNS-rebinding reads, no cross-site writes from a web page.

The Host header must name this server (loopback names on a loopback bind, else ALLOWED_HOSTS
when set); a state-changing request whose Origin is another site is refused. Does not
authenticate anyone: that is app/access.py.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Probes come from kubelets and load balancers addressing the pod by IP; they hold no data.
_UNCHECKED_PATHS: Final = frozenset({"/healthz", "/readyz"})


def split_host(value: str) -> tuple[str, str]:
    """(hostname, port) of a Host header value; IPv6 literals lose their brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return host, port


def is_loopback_name(hostname: str) -> bool:
    """localhost, *.localhost, 127.0.0.0/8 or ::1."""
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class HostPolicy:
    """Which Host names the app answers to."""

    def __init__(self, allowed: Sequence[str], *, is_loopback_bind: bool) -> None:
        self.allowed = tuple(a.strip().lower() for a in allowed if a.strip())
        self.is_loopback_bind = is_loopback_bind

    @property
    def is_checked(self) -> bool:
        return bool(self.allowed) or self.is_loopback_bind

    def describe(self) -> str:
        if self.allowed:
            return ", ".join(self.allowed)
        return "localhost, 127.0.0.1 (any 127.x), [::1]"

    def allows(self, hostname: str) -> bool:
        if not self.allowed:
            return not self.is_loopback_bind or is_loopback_name(hostname)
        return "*" in self.allowed or self.names(hostname)

    def names(self, hostname: str) -> bool:
        """Whether an ALLOWED_HOSTS entry names hostname. A bare `*` names nothing: it lets any
        Host in, but must never make any web page's Origin trusted."""
        for pattern in self.allowed:
            if pattern == hostname:
                return True
            suffix = pattern.removeprefix("*")
            if suffix.startswith(".") and hostname.endswith(suffix):
                return True
        return False


def _origin_netloc(origin: str) -> str | None:
    """host[:port] of an Origin header with the scheme's default port dropped; None for
    `null` or anything unreadable."""
    try:
        parts = urlsplit(origin.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return host if port in (None, default) else f"{host}:{port}"


def _host_netloc(host: str, scheme: str) -> str:
    hostname, port = split_host(host)
    default = "443" if scheme == "https" else "80"
    hostname = f"[{hostname}]" if ":" in hostname else hostname
    return hostname if port in ("", default) else f"{hostname}:{port}"


class HostOriginMiddleware:
    """400 for a Host this server does not answer to; 403 for a state-changing request from
    another origin (a browser always sends Origin on cross-site POSTs, including no-cors
    fetches and form posts)."""

    def __init__(self, app: ASGIApp, *, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        path: str = scope.get("path", "")
        if self.policy.is_checked and path not in _UNCHECKED_PATHS:
            hostname, _ = split_host(host)
            if not self.policy.allows(hostname):
                message = (
                    f"Host {host[:100]!r} is not a name this server answers to"
                    f" (allowed: {self.policy.describe()}; set AUDIT_TIMELINE_ALLOWED_HOSTS)"
                )
                await _refuse(send, 400, message)
                return
        origin = headers.get("origin")
        if scope["method"] not in SAFE_METHODS and origin is not None:
            netloc = _origin_netloc(origin)
            if netloc is None or not (
                netloc == _host_netloc(host, scope.get("scheme", "http"))
                # Behind a proxy that rewrites Host, the public name is in ALLOWED_HOSTS.
                or self.policy.names(split_host(netloc)[0])
            ):
                message = (
                    f"cross-origin {scope['method']} refused: Origin {origin[:100]!r} is not"
                    " this server (web pages may not post here; API clients send no Origin)"
                )
                await _refuse(send, 403, message)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": None}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
