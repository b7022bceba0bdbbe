"""The error bodies of the HTTP API as OpenAPI documents them, and the per-status descriptions.

Every error answer is `{"error": message, "detail": ...}` (app/main.py); `detail` lists the
parameters at fault for 422 and is null otherwise. Documentation only: no behaviour here.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict


class ParamProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    param: str
    message: str


class ErrorBody(BaseModel):
    """An error: what is wrong, in one sentence."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: None


class IngestErrorBody(BaseModel):
    """An ingest error: the same sentence, and (from the ingest handler) the fields of a
    Kubernetes `Status`, so kube-apiserver's webhook client logs the message."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: None
    kind: str | None = None
    apiVersion: str | None = None  # noqa: N815 (the Kubernetes field name)
    metadata: dict[str, Any] | None = None
    status: str | None = None
    message: str | None = None
    reason: str | None = None
    code: int | None = None


class ValidationErrorBody(BaseModel):
    """Parameters that are not valid: the sentence, and each parameter with its problem."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: list[ParamProblem]


DESCRIPTIONS: Final = {
    400: "Bad request (a cursor that is not from next_cursor, a body that is no audit Event"
    " batch, a Host this server does not answer to)",
    401: "Authentication required (bearer token, or the trusted auth proxy)",
    403: "The token's role is not enough, or a cross-origin write",
    404: "Not found",
    409: "The item was sealed with another key (REDACTION_KEY changed)",
    413: "Body or item count over the configured limit",
    415: "Content-Type not JSON/NDJSON, or Content-Encoding not gzip",
    422: "Invalid parameters",
    429: "Over this sender's rate: retry after Retry-After seconds",
    503: "Database unavailable: retry after Retry-After seconds",
}


def error_responses(*codes: int, is_ingest: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route or router for these error statuses."""
    plain = IngestErrorBody if is_ingest else ErrorBody
    return {
        code: {
            "description": DESCRIPTIONS[code],
            "model": ValidationErrorBody if code == 422 else plain,
        }
        for code in codes
    }
