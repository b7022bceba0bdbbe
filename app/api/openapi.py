"""The error bodies of the HTTP API as OpenAPI documents them, and the per-status descriptions.

Every error answer is `{"error": message, "detail": ...}` (app/main.py); `detail` lists the
parameters at fault for 422 and is null otherwise. Documentation only: no behaviour here.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field


class ParamProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    param: str
    message: str


class ErrorBody(BaseModel):
    """An error: what is wrong, in one sentence."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: None


class ValidationErrorBody(BaseModel):
    """Parameters that are not valid: the sentence, and each parameter with its problem."""

    model_config = ConfigDict(extra="forbid")

    error: str
    detail: list[ParamProblem]


class IngestErrorBody(BaseModel):
    """An error of POST /ingest: the usual fields, and the same message as a Kubernetes
    `Status`, so kube-apiserver's webhook client logs our sentence instead of a generic one."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    error: str
    detail: list[ParamProblem] | None
    kind: Literal["Status"]
    api_version: Literal["v1"] = Field(alias="apiVersion")
    metadata: dict[str, Any]
    status: Literal["Failure"]
    message: str
    reason: str
    code: int


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


# Answered by the Host/Origin check before a request reaches a route: plain error bodies.
_BEFORE_ROUTING: Final = frozenset({400, 403})


def error_responses(*codes: int, is_ingest: bool = False) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route or router for these error statuses (POST /ingest's errors
    also carry Kubernetes `Status` fields)."""
    return {
        code: {
            "description": DESCRIPTIONS[code],
            "model": (IngestErrorBody | ErrorBody if code in _BEFORE_ROUTING else IngestErrorBody)
            if is_ingest
            else ValidationErrorBody
            if code == 422
            else ErrorBody,
        }
        for code in codes
    }
