"""Who may read what: open on a loopback bind only; else bearer tokens with roles, or a trusted
auth proxy's user header accepted only from the proxy's own addresses.

Roles, each including the ones before it: viewer (browse, query), exporter (CSV/NDJSON),
admin (quarantine). Posting events is separate: INGEST_TOKENS (app/ingest/auth.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from fastapi import HTTPException, Request, status

from app.settings import Settings

Role = Literal["viewer", "exporter", "admin"]
T = TypeVar("T")
_RANK: dict[str, int] = {"viewer": 1, "exporter": 2, "admin": 3}


@dataclass(frozen=True)
class AccessPolicy:
    tokens: dict[str, Role]
    proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    proxy_header: str
    proxy_role: Role
    is_loopback: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """The policy the settings describe (validated by Settings already)."""
        return cls(
            tokens=settings.access_token_map(),
            proxy_networks=tuple(
                ipaddress.ip_network(a, strict=False) for a in settings.auth_proxy_addresses
            ),
            proxy_header=settings.auth_proxy_header,
            proxy_role=settings.auth_proxy_role,
            is_loopback=settings.is_loopback,
        )

    @property
    def is_open(self) -> bool:
        """No access control configured, and only this machine can connect."""
        return not self.tokens and not self.proxy_networks and self.is_loopback

    def role_for(self, request: Request) -> Role | None:
        """The role the request proves, if any."""
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            found = token_lookup(self.tokens, presented.strip())
            if found is not None:
                return found
            # Not one of ours: an auth proxy may pass its own ID token along; try the proxy.
        if self.proxy_networks and request.client is not None:
            try:
                peer = ipaddress.ip_address(request.client.host)
            except ValueError:
                return None
            is_proxy = any(peer in network for network in self.proxy_networks)
            if is_proxy and request.headers.get(self.proxy_header, "").strip():
                return self.proxy_role
        return None


def token_lookup(tokens: Mapping[str, T], presented: str) -> T | None:
    """The value of the matching token. Compares SHA-256 digests of every token in constant
    time, so neither a token nor its length shows in the timing."""
    digest = hashlib.sha256(presented.encode()).digest()
    found: T | None = None
    for token, value in tokens.items():
        if hmac.compare_digest(hashlib.sha256(token.encode()).digest(), digest):
            found = value
    return found


def require(role: Role) -> Callable[[Request], Awaitable[None]]:
    """A dependency that lets the request through only with at least this role."""

    async def check(request: Request) -> None:
        policy: AccessPolicy = request.app.state.access
        if policy.is_open:
            return
        granted = policy.role_for(request)
        if granted is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="authentication required: a bearer token (AUDIT_TIMELINE_ACCESS_TOKENS)"
                " or the configured auth proxy",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if _RANK[granted] < _RANK[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"this needs the {role} role, not {granted}"
            )

    return check
