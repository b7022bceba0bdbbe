"""Who may post events, and as which cluster: bearer tokens mapped to cluster names.

Without configured tokens, ingest is open only when the server binds to loopback.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status

from app.access import token_lookup
from app.settings import validate_cluster_name

DEFAULT_CLUSTER = "default"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate_ingest(request: Request) -> str:
    """Return the cluster this request may write as, or raise 401/403."""
    tokens: dict[str, str] = request.app.state.ingest_tokens
    asked = request.query_params.get("cluster")
    if asked is not None:
        try:
            validate_cluster_name(asked)
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=f"cluster: {exc}") from None
    if not tokens:
        if not request.app.state.settings.is_loopback:
            raise _unauthorized("ingest needs AUDIT_TIMELINE_INGEST_TOKENS off loopback")
        return asked or DEFAULT_CLUSTER
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("missing bearer token (Authorization: Bearer <token>)")
    cluster = token_lookup(tokens, presented.strip())
    if cluster is None:
        raise _unauthorized("unknown bearer token")
    if asked is not None and asked != cluster:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"this token writes as cluster {cluster!r}, not {asked!r}",
        )
    return cluster
