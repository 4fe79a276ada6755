"""What the service answers when it refuses: `{"error": {"code", "message", "where"}}`, and
how /openapi.json describes it (`documented`: the `responses` of a route)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ServiceProblem(Exception):
    """A refusal with its HTTP status, a stable `code`, a message for people and `where` (the
    header, field or item at fault; "" when it is the request as a whole)."""

    def __init__(self, status: int, code: str, message: str, where: str = "",
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.where = status, code, message, where
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.where)


def error_body(code: str, message: str, where: str = "") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "where": where}}


# In /openapi.json ---------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="a stable code, such as `unknown_run`")
    message: str = Field(description="for people: what is wrong and what to do")
    where: str = Field(description="the header, parameter, field or item at fault; \"\" when "
                                   "it is the request as a whole")


class Error(BaseModel):
    """Every refusal and failure: 4xx and 5xx alike."""
    model_config = ConfigDict(extra="forbid")
    error: ErrorDetail


_WHY = {400: "the request is not usable: `not_json`, `not_an_event`, `no_events`, "
             "`invalid_event`, `bad_parameter`, `bad_cursor`, `ambiguous_run`, `bad_request`, "
             "`not_an_interaction`",
        401: "not signed or not authenticated: `unsigned`, `bad_timestamp`, "
             "`stale_timestamp`, `bad_signature`, `unknown_source`, `unauthenticated`",
        403: "`forbidden` (the token's role is too low) or `answer_refused`",
        404: "`unknown_run`, `unknown_access_request`, or `not_found` (no such endpoint)",
        409: "`run_state` (the run's state does not allow it), `cannot_undo` or "
             "`access_state` (the access request's state does not allow it)",
        413: "`too_large`: the body is larger than service.max_body_bytes",
        422: "`invalid_request`: a parameter or body that does not fit the endpoint",
        429: "`rate_limited`: retry after Retry-After seconds",
        500: "`internal` or `failed`: logged by the service, with secrets redacted",
        502: "`registry_failed`: the model registry refused or failed the grant or revoke",
        503: "`draining` (shutting down; Retry-After), `not_ready`, `not_stored` or "
             "`journal_unavailable` (the journal's database cannot be reached; Retry-After)"}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "string"}}}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of the refusals a route can answer, each an `Error` body; every
    route can also refuse a body past service.max_body_bytes (413), fail (500) and, but for
    /healthz, be draining (503)."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 413, 500}):
        documented[status] = {"model": Error, "description": _WHY[status]}
        if status in (429, 503):
            documented[status]["headers"] = _RETRY_AFTER
    return documented
