"""Who may post events, and as which cluster: bearer tokens mapped to cluster names.

Without configured tokens, ingest is open only when the server binds to loopback. Every refusal
is counted by reason; a webhook sender that sent no credentials is told why (and logged, rate
limited): client-go sends a kubeconfig's token only to an https:// server.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

from fastapi import HTTPException, Request, status

from app.access import token_lookup
from app.settings import validate_cluster_name

logger = logging.getLogger(__name__)

DEFAULT_CLUSTER = "default"
RejectReason = Literal[
    "no_credentials",
    "unknown_token",
    "tokens_not_configured",
    "invalid_cluster",
    "cluster_not_allowed",
]
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)
NO_CREDENTIALS_OVER_HTTP = (
    "the API server sent no credentials; kube-apiserver sends the bearer token only to an"
    " https:// server"
)
_HTTP_FIX = (
    ": serve HTTPS (audit-timeline serve --tls-self-signed, or TLS_CERTFILE/TLS_KEYFILE) and"
    " put the https:// URL and the CA (certificate-authority) in the webhook kubeconfig"
)
_NO_TOKEN_OVER_HTTPS = (
    "the API server sent no credentials: give the webhook kubeconfig's user a token"
    " (one of AUDIT_TIMELINE_INGEST_TOKENS)"
)
# client-go's default User-Agent (rest.DefaultKubernetesUserAgent): "NAME/VERSION (OS/ARCH)
# kubernetes/COMMIT", e.g. "kube-apiserver/v1.31.0 (linux/amd64) kubernetes/9edcffc".
_CLIENT_GO_AGENT = re.compile(r"^[^/\s]+/\S+ \([^)]*\) kubernetes/\S+")


@dataclass
class WarningLimiter:
    """Lets one warning through per interval (a retrying API server must not flood the log)
    and counts the ones held back meanwhile."""

    interval_seconds: float = 60.0
    _last: float | None = None
    suppressed: int = field(default=0)

    def allow(self) -> bool:
        """True when the warning may be logged now."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval_seconds:
            self.suppressed += 1
            return False
        self._last = now
        return True


def is_webhook_sender(user_agent: str) -> bool:
    """True for kube-apiserver and other Go / client-go HTTP clients."""
    return (
        user_agent.startswith(("kube-apiserver/", "Go-http-client/"))
        or _CLIENT_GO_AGENT.match(user_agent) is not None
    )


def _reject(request: Request, code: int, reason: RejectReason, message: str) -> HTTPException:
    request.app.state.metrics.ingest_rejected.labels(reason).inc()
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    return HTTPException(code, detail=message, headers=headers)


def _no_credentials(request: Request) -> HTTPException:
    user_agent = request.headers.get("user-agent", "")
    if not is_webhook_sender(user_agent):
        return _reject(
            request,
            status.HTTP_401_UNAUTHORIZED,
            "no_credentials",
            "missing bearer token (Authorization: Bearer <token>)",
        )
    is_https = request.url.scheme == "https"
    explanation = _NO_TOKEN_OVER_HTTPS if is_https else NO_CREDENTIALS_OVER_HTTP + _HTTP_FIX
    limiter: WarningLimiter = request.app.state.no_credentials_warning
    if limiter.allow():
        logger.warning(
            "ingest.webhook_sent_no_credentials",
            extra={
                "explanation": explanation,
                "scheme": request.url.scheme,
                "user_agent": user_agent[:120],
                "client": request.client.host if request.client else None,
                "suppressed_since_last": limiter.suppressed,
            },
        )
        limiter.suppressed = 0
    return _reject(request, status.HTTP_401_UNAUTHORIZED, "no_credentials", explanation)


def authenticate_ingest(request: Request) -> str:
    """Return the cluster this request may write as, or raise 401/403."""
    tokens: dict[str, str] = request.app.state.ingest_tokens
    asked = request.query_params.get("cluster")
    if asked is not None:
        try:
            validate_cluster_name(asked)
        except ValueError as exc:
            raise _reject(
                request, status.HTTP_400_BAD_REQUEST, "invalid_cluster", f"cluster: {exc}"
            ) from None
    if not tokens:
        if not request.app.state.settings.is_loopback:
            raise _reject(
                request,
                status.HTTP_401_UNAUTHORIZED,
                "tokens_not_configured",
                "ingest needs AUDIT_TIMELINE_INGEST_TOKENS off loopback",
            )
        return asked or DEFAULT_CLUSTER
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if "authorization" not in request.headers:
        raise _no_credentials(request)
    if scheme.lower() != "bearer" or not presented.strip():
        raise _reject(
            request,
            status.HTTP_401_UNAUTHORIZED,
            "no_credentials",
            "missing bearer token (Authorization: Bearer <token>)",
        )
    cluster = token_lookup(tokens, presented.strip())
    if cluster is None:
        raise _reject(
            request, status.HTTP_401_UNAUTHORIZED, "unknown_token", "unknown bearer token"
        )
    if asked is not None and asked != cluster:
        raise _reject(
            request,
            status.HTTP_403_FORBIDDEN,
            "cluster_not_allowed",
            f"this token writes as cluster {cluster!r}, not {asked!r}",
        )
    return cluster
