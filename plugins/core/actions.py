"""The core actions: core.http_request, core.noop, core.transform, core.wait_for_approval."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from crownguard.engine import (
    Action,
    ActionContext,
    ActionError,
    BadResponse,
    InputError,
    Waiting,
    action,
    evaluate,
)

from . import schemas
from .client import HttpClient, refuse_unless_allowed


@action("core.http_request", side_effect=True, connection="http",
        input_schema=schemas.HTTP_REQUEST_INPUT, output_schema=schemas.HTTP_REQUEST_OUTPUT)
def http_request(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Send one HTTP request to a host allowed by `connections.http.allowed_hosts`.

    `credential: NAME` sends a credential of `connections.http.credentials` (a header whose
    value lives in the connections file, never in the playbook or the run), and only to the
    hosts that credential is bound to. The output is `{status_code, headers, body}`, the body
    parsed when it is JSON. A non-2xx answer fails the step (429 and 5xx retryably, honouring
    Retry-After); redirects are not followed. Every request carries an `Idempotency-Key`
    header that stays the same across the step's retries and resumes. No retries by default:
    give the step a `retry` policy.
    """
    url = inputs["url"]
    if "http" not in ctx.connections:
        refuse_unless_allowed(url, [])
        raise ActionError("core.http_request: no 'http' connection configured")
    client = ctx.client(HttpClient)
    client.check_target(url)  # before anything else: the refusal names the host, sends nothing
    method = inputs.get("method", "GET")
    headers = {"Idempotency-Key": ctx.idempotency_key, **(inputs.get("headers") or {})}
    if inputs.get("credential"):
        name = inputs["credential"]
        header, value = client.credential_header(name, url, ctx.step_id)
        clash = [h for h in headers if h.lower() == header.lower()]
        if clash:
            raise InputError(f"core.http_request: headers.{clash[0]} is also set by credential "
                             f"'{name}'; give one of them")
        headers[header] = value
    # JSON booleans go out as true/false, not Python's True/False.
    params = {k: (str(v).lower() if isinstance(v, bool) else v)
              for k, v in (inputs.get("params") or {}).items()}
    response = client.request(method, url, operation=f"{method} {urlsplit(url).path or '/'}",
                              params=params or None, json_body=inputs.get("json"),
                              headers=headers, timeout=inputs.get("timeout"))
    body: Any = response.text
    if "json" in response.headers.get("Content-Type", "") and response.content:
        try:
            body = response.json()
        except ValueError:
            raise BadResponse("the answer says it is JSON but is not", vendor="http",
                              operation=f"{method} {url}", status=response.status_code) from None
    return {"status_code": response.status_code, "headers": dict(response.headers), "body": body}


@action("core.noop", input_schema=schemas.ANY_OBJECT, output_schema=schemas.ANY_OBJECT,
        inline=True)
def noop(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Do nothing; the output is the inputs (handy for joins, tests and computed values)."""
    return dict(inputs)


@action("core.transform", input_schema=schemas.TRANSFORM_INPUT,
        output_schema=schemas.TRANSFORM_OUTPUT, inline=True)
def transform(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Reshape data with JMESPath: the output is `{result}`.

    `expression` is applied to `data`; without an expression, `result` is `data` itself."""
    expression = inputs.get("expression")
    if expression is None:
        return {"result": inputs["data"]}
    try:
        return {"result": evaluate(expression, inputs["data"])}
    except Exception as exc:
        raise ActionError(f"core.transform: {exc}") from None


@action("core.wait_for_approval", input_schema=schemas.APPROVAL_INPUT,
        output_schema=schemas.APPROVAL_OUTPUT)
def wait_for_approval(ctx: ActionContext, inputs: dict[str, Any]) -> Any:
    """Pause the run until a person approves or rejects, or the wait times out.

    The run is stored as `waiting` (nothing is held in memory). `crownguard approve RUN_ID STEP
    --decision approve|reject --by NAME [--comment TEXT]` answers it; when `approvers` is given,
    an answer by anyone else is refused and recorded. Approve: the step succeeds with
    `{decision, by, comment, at}`. Reject, or no answer within `timeout_seconds`: the step fails,
    so `when: failure` steps can escalate. A dry run shows what would run after each answer.
    """
    return Waiting(reason=inputs["prompt"], timeout_seconds=inputs.get("timeout_seconds"),
                   data={"approvers": inputs.get("approvers") or [],
                         "details": inputs.get("details")})


ACTIONS: tuple[Action, ...] = (http_request, noop, transform, wait_for_approval)

__all__ = ["ACTIONS"]
