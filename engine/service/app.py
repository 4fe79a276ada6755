"""The HTTP API of `crownguard serve` (FastAPI): events in, runs shown and controlled.

Every refusal is `{"error": {"code", "message", "where"}}`, 404, 405 and 422 included; an
unexpected exception is a 500 with no traceback and no secret. Runs are acted on through
`crownguard.engine.runs`, the functions the CLI calls, as the caller's token name (`by`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__, run_undo, runs
from ..errors import (
    AmbiguousRun,
    CrownguardError,
    JournalError,
    JournalUnavailable,
    RunsError,
    RunStateError,
    UndoError,
    UnknownRun,
)
from ..journal.audit import canonical_json
from .access_routes import access_router
from .access_undo import AccessUndo
from .bodies import (
    EVENTS_PREFIX,
    INLINE_BODY_BYTES,
    AnswerBody,
    CancelBody,
    Gone,
    RerunBody,
    UndoBody,
    body_of,
    declared_too_large,
    is_events_path,
    limited,
    read_body,
    too_large,
)
from .console import mount_console
from .logs import bound
from .metrics import CONTENT_TYPE
from .payloads import normalise_payload, parse_json
from .problems import ServiceProblem, error_body
from .problems import documented as _errors
from .service import Service
from .settings import ApiToken, Role
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from .slack import take_interaction

log = logging.getLogger("crownguard.service")
_bearer = HTTPBearer(auto_error=False, description="a token of the service section; its name "
                                                   "is recorded as `by`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
MAX_SEQ = 2**63 - 1  # a row id or sequence number: past it SQLite and PostgreSQL overflow (500)


_AUTHENTICATED = (401, 403, 422, 503)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# The events route reads its body raw (the signature is over its bytes): described here.
_EVENTS_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "description": "one event (normalised, or a raw payload of an installed event source) "
                   "or a list of them",
    "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"},
                                   "minItems": 1}]}}}}}


def _caller(role: Role) -> Callable[[Request, Credentials], ApiToken]:
    """A dependency: the caller's token, of `role` or above; 401 or 403 otherwise."""

    def check(request: Request, credentials: Credentials) -> ApiToken:
        service: Service = request.app.state.service
        if credentials is None:
            raise ServiceProblem(401, "unauthenticated", "send Authorization: Bearer <token> "
                                 "(a token of the service section)", "Authorization",
                                 headers={"WWW-Authenticate": "Bearer"})
        token = service.settings.caller(credentials.credentials)
        if token is None:
            raise ServiceProblem(401, "unauthenticated", "the bearer token is not one of the "
                                 "service's", "Authorization",
                                 headers={"WWW-Authenticate": "Bearer"})
        if token.role < role:
            raise ServiceProblem(403, "forbidden", f"'{token.name}' is a {token.role}; this "
                                 f"needs {role} or above", "Authorization")
        return token

    return check


Viewer = Annotated[ApiToken, Depends(_caller(Role.VIEWER))]
Responder = Annotated[ApiToken, Depends(_caller(Role.RESPONDER))]
Approver = Annotated[ApiToken, Depends(_caller(Role.APPROVER))]


def _status_of(exc: CrownguardError) -> tuple[int, str]:
    if isinstance(exc, UnknownRun):
        return 404, "unknown_run"
    if isinstance(exc, AmbiguousRun):
        return 400, "ambiguous_run"
    if isinstance(exc, RunStateError):
        return 409, "run_state"
    if isinstance(exc, UndoError):
        return 409, "cannot_undo"
    if isinstance(exc, RunsError):
        return 400, "bad_request"
    if isinstance(exc, JournalUnavailable):
        return 503, "journal_unavailable"
    return 500, "failed"


def build_app(service: Service) -> FastAPI:
    app = FastAPI(title="crownguard", version=__version__, openapi_url="/openapi.json",
                  docs_url=None, redoc_url=None,
                  description="The crownguard service: signed events in, runs shown and "
                              "controlled. Errors: {\"error\": {\"code\", \"message\", "
                              "\"where\"}}.")
    app.state.service = service
    redact = service.config.redactor.redact

    def problem(exc: ServiceProblem) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ServiceProblem)
    async def _problem(request: Request, exc: ServiceProblem) -> JSONResponse:
        return problem(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 413:  # a body past service.max_body_bytes (bodies.limited)
            return problem(ServiceProblem(413, "too_large", str(exc.detail), "body"))
        if exc.status_code == 400:  # the framework could not read the body (json's
            # RecursionError for a deep nesting, a form it cannot parse): one of our codes
            return problem(ServiceProblem(400, "not_json", "the body could not be read as "
                                          "JSON: malformed or nested too deeply", "body"))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not the first route's only
            headers["Allow"] = ", ".join(_methods_of(app.router.routes, request.scope))
        return JSONResponse(error_body(code, message, request.url.path),
                            status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                            for e in errors[:5])
        return JSONResponse(error_body("invalid_request", redact(message), where),
                            status_code=422)

    @app.exception_handler(CrownguardError)
    async def _crownguard(request: Request, exc: CrownguardError) -> JSONResponse:
        status, code = _status_of(exc)
        if status in (500, 503):
            log.error("%s %s: %s", request.method, request.url.path, redact(str(exc)))
        where = "run_id" if isinstance(exc, UnknownRun | AmbiguousRun) else ""  # the path's
        return JSONResponse(error_body(code, redact(str(exc)), where), status_code=status,
                            headers={"Retry-After": "5"} if status == 503 else None)

    def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: internal error: %s: %s", request.method, request.url.path,
                  type(exc).__name__, redact(str(exc)))
        return JSONResponse(error_body("internal", "internal error (logged by the service)"),
                            status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)

    async def _drain_and_measure(scope: Scope, receive: Receive, send: Send,
                                 inner: ASGIApp) -> None:
        """Plain ASGI (no BaseHTTPMiddleware: a task and a stream per request were a fifth of
        the intake's time): 503 while draining, an unexpected exception answered here (so no
        server logs a traceback of it), and every request counted and timed."""
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        answered = [False]

        async def tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0], answered[0] = int(message["status"]), True
            await send(message)

        if service.draining.is_set() and scope.get("path") != "/healthz":
            await problem(ServiceProblem(
                503, "draining", "the service is shutting down: retry against another "
                "instance or after it restarts", headers={"Retry-After": "5", "Connection":
                                                          "close"}))(scope, receive, tracking)
        else:
            try:
                await inner(scope, receive, tracking)
            except Exception as exc:
                if answered[0]:  # too late for an answer of ours: logged, redacted
                    log.error("%s %s: after the answer started: %s: %s", scope.get("method"),
                              scope.get("path"), type(exc).__name__, redact(str(exc)))
                else:
                    await _internal(Request(scope), exc)(scope, receive, tracking)
        name = getattr(scope.get("route"), "path", "unmatched")
        service.metrics.requests.labels(scope.get("method", ""), name, str(status[0])).inc()
        service.metrics.latency.labels(name).observe(time.perf_counter() - started)

    class _Gate:
        def __init__(self, app: ASGIApp):
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if (scope["type"] == "http" and scope["method"] == "POST"
                    and is_events_path(scope["path"])):
                await _drain_and_measure(scope, receive, send, _events)
            elif scope["type"] == "http":  # every other body: service.max_body_bytes too
                limit = service.settings.max_body_bytes
                declared = Headers(scope=scope).get("content-length")
                if declared_too_large(declared, limit):
                    await _drain_and_measure(scope, receive, send, problem(too_large(limit)))
                else:
                    await _drain_and_measure(scope, limited(receive, declared, limit), send,
                                             self.app)
            else:
                await _drain_and_measure(scope, receive, send, self.app)

    app.add_middleware(_Gate)

    # --- health -------------------------------------------------------------------------------

    app.include_router(access_router(service, _caller, _errors))

    @app.get("/healthz", tags=["health"], responses=_errors())
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses=_errors(503))
    def readyz() -> JSONResponse:
        """The journal and the intake table answer."""
        try:
            service.journal.head()
            service.store.ping()
        except Exception as exc:
            raise ServiceProblem(503, "not_ready", f"the journal is unreachable: "
                                 f"{redact(str(exc))}", "journal") from None
        return JSONResponse({"status": "ready", "intake": service.store.counts()})

    @app.get("/metrics", tags=["health"], response_class=Response, responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}},
              "description": "the metrics"}, **_errors(503)})
    def metrics() -> Response:
        """Prometheus text format; every name starts with crownguard_."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    # --- events -------------------------------------------------------------------------------

    @app.post("/v1/events/{source}", status_code=202, tags=["events"],
              responses=_errors(400, 401, 404, 413, 422, 429, 503), openapi_extra=_EVENTS_BODY)
    async def post_events(source: str, request: Request) -> JSONResponse:
        """One event or a list, signed by a configured source; 202 once all are stored."""
        # Described here for /openapi.json; the gate answers it first (`_events`), without
        # the framework's routing and dependencies: a third of the intake's time. This is
        # the same answer, for an app mounted without the gate.
        return await intake(source, request.headers, request.stream())

    async def intake(source: str, headers: Any, chunks: AsyncIterator[bytes]
                     ) -> JSONResponse:
        try:
            sender = (service.settings.sources or {}).get(source)
            if sender is None:
                raise ServiceProblem(401, "unknown_source", f"no event source '{source}' in "
                                     "the service section", "source")
            body = await read_body(headers.get("content-length"), chunks,
                               service.settings.max_body_bytes)
            verify(sender.secret.reveal(), headers.get(TIMESTAMP_HEADER),
                   headers.get(SIGNATURE_HEADER), body)
            service.rates.take(source, sender.max_requests_per_minute)
            if len(body) > INLINE_BODY_BYTES:  # a big list: normalised off the event loop
                events = await run_in_threadpool(_normalise, body)
            else:
                events = _normalise(body)
            try:
                stored = await asyncio.wrap_future(service.store.submit(
                    source, [(e.id, e.to_dict()) for e in events]))
            except JournalError as exc:  # nothing of it is stored: the sender retries
                log.error("intake from %s not stored: %s", source, redact(str(exc)))
                raise ServiceProblem(503, "not_stored", "the events were not stored (logged "
                                     "by the service): retry", "journal",
                                     headers={"Retry-After": "5"}) from None
        except ServiceProblem as exc:
            service.metrics.events_refused.labels(source if source in (
                service.settings.sources or {}) else "(unknown)", exc.code).inc()
            return problem(exc)
        accepted = service.metrics.events_accepted
        for item in stored:
            accepted.labels(source, "true" if item.duplicate else "false").inc()
        service.background.wake()
        return JSONResponse({"accepted": [{"event_id": a.event_id, "duplicate": a.duplicate}
                                          for a in stored]}, status_code=202)

    def _normalise(body: bytes) -> list[Any]:
        return normalise_payload(parse_json(body), service.policy,
                                 service.host.event_sources.values())

    async def _events(scope: Scope, receive: Receive, send: Send) -> None:
        """POST /v1/events/{source} as plain ASGI (the gate's fast path)."""
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Gone()
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        scope["route"] = post_events_route
        try:
            answer = await intake(scope["path"][len(EVENTS_PREFIX):], Headers(scope=scope),
                                  chunks())
        except Gone:
            return  # the sender went away before its body arrived: nothing was stored
        await answer(scope, receive, send)

    post_events_route = next(r for r in app.routes
                             if getattr(r, "path", None) == "/v1/events/{source}")

    @app.post("/v1/slack/interactions", tags=["slack"], response_class=Response,
              responses=_errors(400, 401, 413, 503))
    async def slack_interaction(request: Request) -> Response:
        """A Slack button click or modal submission, signed with the Slack app's signing
        secret: 200 at once (empty, as Slack expects); the answer is recorded in the
        background by the clicking user's e-mail."""
        body = await body_of(request, service.settings.max_body_bytes)
        await run_in_threadpool(take_interaction, service, body, request.headers)
        return Response(status_code=200)

    @app.get("/v1/intake/dead-letters", tags=["events"], responses=_errors(*_AUTHENTICATED))
    def dead_letters(who: Viewer, after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """Events a poller could not read, set aside (oldest first, after row `after`)."""
        found = service.store.dead_letters(limit=limit, after=after)
        return {"dead_letters": found, "next_after": found[-1]["id"] if found else None}

    # --- runs ---------------------------------------------------------------------------------

    @app.get("/v1/runs", tags=["runs"], responses=_errors(400, *_AUTHENTICATED))
    def list_runs(who: Viewer, status: str | None = None, playbook: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  cursor: str | None = None) -> dict[str, Any]:
        """Run summaries, newest first; pass next_cursor back for the next page."""
        found, following = service.listing.page(status=status, playbook=playbook, limit=limit,
                                                cursor=cursor)
        return {"runs": [_summary(r.to_dict(with_text=False)) for r in found],
                "next_cursor": following}

    @app.get("/v1/runs/{run_id}", tags=["runs"],
             responses=_errors(400, 404, *_AUTHENTICATED))
    def show_run(run_id: str, who: Viewer) -> dict[str, Any]:
        """The run record with its timeline and, for each waiting step, who may answer and
        until when."""
        detail = runs.show(service.journal, service.host, run_id)
        run = detail.run
        return {**detail.record, "kind": str(run.kind), "parent_run_id": run.parent_run_id,
                "created_at": run.created_at, "updated_at": run.updated_at,
                "timeline": detail.events,
                "approvals": [a.to_dict() for a in detail.approvals],
                "waiting": [{"step": w.step, "reason": w.reason,
                             "approvers": list(w.approvers) or list(service.config.approvers),
                             "expires_at": w.expires_at} for w in detail.waiting]}

    @app.post("/v1/runs/{run_id}/steps/{step_id}/answer", tags=["runs"],
              responses=_errors(400, 404, 409, *_AUTHENTICATED))
    def answer(run_id: str, step_id: str, body: AnswerBody, who: Approver) -> JSONResponse:
        """Approve or reject a waiting step as the caller; the run goes on."""
        with service.operation(run_id), bound(run_id=run_id):
            result = runs.answer(service.journal, service.host, run_id, step_id, body.decision,
                                 by=who.name, comment=body.comment,
                                 config_path=service.config_path)
        if not result.accepted or result.outcome is None:
            raise ServiceProblem(403, "answer_refused", f"refused and recorded: "
                                 f"{result.reason}", step_id)
        return JSONResponse({"accepted": True, "by": who.name, "run": result.outcome.record})

    @app.post("/v1/runs/{run_id}/cancel", tags=["runs"],
              responses=_errors(400, 404, 409, *_AUTHENTICATED))
    def cancel(run_id: str, who: Responder, body: CancelBody | None = None) -> dict[str, Any]:
        """Cancel a run that has not ended."""
        with service.operation(run_id), bound(run_id=run_id):
            outcome = runs.cancel(service.journal, service.host, run_id, by=who.name,
                                  reason=body.reason if body else None,
                                  config_path=service.config_path)
        return {"by": who.name, "run": outcome.record}

    @app.post("/v1/runs/{run_id}/undo", tags=["runs"],
              responses=_errors(400, 404, 409, *_AUTHENTICATED))
    def undo(run_id: str, who: Responder, body: UndoBody | None = None) -> dict[str, Any]:
        """Undo a run's changes (one step's), as an undo run of its own."""
        body = body or UndoBody()
        with service.operation(run_id), bound(run_id=run_id):
            plan = run_undo.prepare_undo(service.journal, service.host, run_id, step=body.step,
                                     config_path=service.config_path)
            result = run_undo.undo(service.journal, service.host, plan, by=who.name,
                               dry_run=body.dry_run, linked=[AccessUndo(
                                   service.journal, service.host, service.config_path)])
        return {"by": who.name, "run_id": result.run_id, "undo_run_id": result.undo_run_id,
                "dry_run": result.dry_run, "calls": len(result.calls),
                "linked": [change.to_dict() for change in result.linked],
                "cancelled": result.cancelled.record if result.cancelled else None,
                "run": result.outcome.record}

    @app.post("/v1/runs/{run_id}/rerun", tags=["runs"],
              responses=_errors(400, 404, 409, *_AUTHENTICATED))
    def rerun(run_id: str, who: Responder, body: RerunBody | None = None) -> dict[str, Any]:
        """A new run of an ended (failed or cancelled) run's playbook, linked to it."""
        with service.operation(run_id), bound(run_id=run_id):
            outcome = runs.rerun(service.journal, service.host, run_id, by=who.name,
                                 config_path=service.config_path)
        return {"by": who.name, "parent_run_id": outcome.parent_run_id, "run": outcome.record}

    @app.get("/v1/audit", tags=["audit"], response_class=Response, responses={
        200: {"content": {"application/x-ndjson": {"schema": {"type": "string"}}},
              "description": "one audit entry (JSON) a line"}, **_errors(*_AUTHENTICATED)})
    def audit(who: Viewer, since_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
              limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> Response:
        """Audit entries after `since_seq`, one JSON object a line (as `audit export`)."""
        lines = []
        for entry in service.journal.entries(since_seq=since_seq):
            lines.append(canonical_json(entry.to_export()))
            if len(lines) >= limit:
                break
        return Response("".join(line + "\n" for line in lines),
                        media_type="application/x-ndjson")

    @app.get("/v1/playbooks", tags=["playbooks"], responses=_errors(*_AUTHENTICATED))
    def playbooks(who: Viewer) -> dict[str, Any]:
        """The playbooks routing can start, with their triggers."""
        router = service.triage.router
        return {"playbooks": [{"name": p.name, "description": p.description,
                               "trigger": p.trigger_if, "source": p.source}
                              for p in router.playbooks.values() if p.trigger_if],
                "untriggered": list(router.untriggered)}

    mount_console(app, service)  # the web console under /ui/ (docs/console.md)
    return app


def _methods_of(routes: Any, scope: Scope) -> list[str]:
    """The methods some route (an included router's too) takes at the scope's path."""
    return [method for method in _METHODS
            if any(route.matches({**scope, "method": method})[0] == Match.FULL
                   for route in routes)]


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    keep = ("run_id", "playbook", "status", "kind", "parent_run_id", "created_at",
            "updated_at", "playbook_sha256")
    return {key: run.get(key) for key in keep}


__all__ = ["build_app"]
