"""The service's access-request routes (`/v1/access-requests`), over the AccessDesk the CLI
uses too. Any authenticated caller asks for themselves (the token's name is the requester) and
is answered as a requester: the state, the times and the policy's words (access_views), not
the risk reasons. A `requester` token lists and shows its own requests only, so trimmed;
viewer and above see every request whole. Approvers approve and deny; the requester or a
responder revokes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from .access import AccessDesk, ActionRegistry, Caller
from .access_hub import hub_registries
from .access_notify import SlackNotifier
from .access_playbook import AccessPlaybook
from .access_store import (
    AccessError,
    AccessForbidden,
    AccessRequest,
    AccessState,
    AccessStore,
    RegistryError,
    TransitionRefused,
    UnknownRequest,
)
from .access_views import requester_history, requester_view
from .problems import ServiceProblem
from .service import Service
from .settings import ApiToken, Role
from .slack import answer_access_click

CallerCheck = Callable[[Role], Callable[..., ApiToken]]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no `requester`: the caller's token says who
    model: str = Field(min_length=1, max_length=500)
    version: str | None = Field(default=None, max_length=100)
    alias: str | None = Field(default=None, max_length=256)
    access: Literal["read", "download"] = "read"
    justification: str = Field(max_length=4000)
    duration_hours: float | None = Field(default=None, gt=0, le=8760)


def request_body(min_justification: int) -> type[RequestBody]:
    """RequestBody as this policy asks it: the justification's schema says the policy's
    minimum (a client generated from /openapi.json knows it) and the check is the policy's
    (counted without the blanks around it), a 422 like every other bad field."""
    if min_justification <= 0:
        return RequestBody
    least = min_justification
    # The schema only says it (says_why checks): two non-blanks at least `least` apart is a
    # text that keeps `least` characters once stripped (`\s` as Python's re and str.strip
    # read it; a JavaScript client differs on U+001C-U+001F, U+0085 and U+FEFF only).
    pattern = r"\S" if least == 1 else rf"\S[\s\S]{{{least - 2},}}\S"

    def says_why(value: str) -> str:
        if len(value.strip()) < least:
            raise PydanticCustomError("justification_too_short", "say why in at least "
                                      "{least} characters (got {got})",
                                      {"least": least, "got": len(value.strip())})
        return value

    # Named as the module's model: /openapi.json calls the body RequestBody whatever the policy.
    return create_model(
        "RequestBody", __base__=RequestBody, __module__=__name__,
        __validators__={"says_why": field_validator("justification")(says_why)},
        justification=(str, Field(max_length=4000, json_schema_extra={
            "minLength": least, "pattern": pattern,
            "description": f"why, in at least {least} characters (the policy's minimum)"})))


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(default=None, max_length=4000)


def desk_for(service: Service) -> AccessDesk | None:
    """The service's desk: the journal (its SQLite file or PostgreSQL database), policy,
    registry connections, the access playbook (run in the same journal) and, with a `slack`
    connection, Slack messages to the requester and the approvers."""
    desk = AccessDesk(AccessStore(service.journal), service.policy,
                      ActionRegistry(service.host, service.config),
                      AccessPlaybook(service.host, service.config, service.journal),
                      registries=hub_registries(service.host, service.config))
    if SlackNotifier.available(service.host, service.config):
        def by_role() -> list[str]:
            role = Role[desk.rules.approver_role.upper()]
            return [t.name for t in service.settings.tokens if t.role >= role]

        desk.notifier = SlackNotifier(service.host, service.config, by_role, background=True)
    return desk


def _problem(exc: AccessError) -> ServiceProblem:
    if isinstance(exc, UnknownRequest):
        return ServiceProblem(404, "unknown_access_request", str(exc), "id")
    if isinstance(exc, AccessForbidden):
        return ServiceProblem(403, "forbidden", str(exc), "Authorization")
    if isinstance(exc, RegistryError):
        return ServiceProblem(502, "registry_failed", str(exc), "")
    if isinstance(exc, TransitionRefused):
        return ServiceProblem(409, "access_state", str(exc), "id")
    return ServiceProblem(400, "bad_request", str(exc), "body")


def access_router(service: Service, caller: CallerCheck,
                  errors: Callable[..., dict[int | str, dict[str, Any]]]) -> APIRouter:
    """The access-request routes; `errors(*statuses)` documents each route's refusals."""
    router = APIRouter(prefix="/v1/access-requests", tags=["access"])
    made = desk_for(service)
    if made is None:
        @router.api_route("{rest:path}", methods=["GET", "POST"], include_in_schema=False)
        def unavailable(rest: str) -> None:
            raise ServiceProblem(501, "not_implemented", "access requests need the SQLite "
                                 "journal in this version")

        return router
    desk = made
    # Slack clicks on an access request's buttons, answered in the background (slack.py).
    service.background.access_answers = lambda reply: answer_access_click(
        desk, service.settings, reply)
    # Defaults, not Annotated aliases: the annotations are strings resolved in this module.
    anyone = Depends(caller(Role.REQUESTER))
    approver = Depends(caller(Role.APPROVER))

    def acting(token: ApiToken) -> Caller:
        return Caller(token.name, token.role)

    def guarded(work: Callable[[], AccessRequest], who: ApiToken) -> dict[str, Any]:
        try:
            return shown(work(), who)
        except AccessError as exc:
            raise _problem(exc) from None

    def shown(request: AccessRequest, who: ApiToken) -> dict[str, Any]:
        return requester_view(request) if who.role < Role.VIEWER else request.to_dict()

    def own(request_id: str, who: ApiToken) -> AccessRequest:
        """The request, when `who` may see it: a requester sees their own only (another's
        is unknown to them, as an id that does not exist: ids are not probed)."""
        request = desk.store.get(request_id)
        if who.role < Role.VIEWER and request.requester != who.name:
            raise UnknownRequest(f"no access request '{request_id}'")
        return request

    asked = (400, 401, 403, 422, 502, 503)
    decided = (400, 401, 403, 404, 409, 422, 502, 503)

    def create(body: RequestBody, who: ApiToken = anyone) -> dict[str, Any]:
        """Ask for the caller; the answer is the requester's view whatever the caller's
        role (the one asking is the one the risk reasons are about); viewers and above
        read the whole request with GET."""
        seconds = None if body.duration_hours is None else round(body.duration_hours * 3600)
        try:
            return requester_view(desk.request(
                who.name, body.model, body.justification, duration_seconds=seconds,
                access=body.access, version=body.version, alias=body.alias))
        except AccessError as exc:
            raise _problem(exc) from None

    # The body's model is this policy's (built now): the annotation names the module's.
    create.__annotations__["body"] = request_body(desk.rules.min_justification)
    router.post("", status_code=201, responses=errors(*asked))(create)

    @router.get("", responses=errors(401, 403, 422, 503))
    def listing(who: ApiToken = anyone, state: AccessState | None = None,
                requester: str | None = None, model: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        if who.role < Role.VIEWER:
            if requester not in (None, who.name):
                raise ServiceProblem(403, "forbidden", f"'{who.name}' is a requester: it "
                                     "lists its own access requests only", "requester")
            requester = who.name
        found = desk.store.find(state=state, requester=requester, model=model, limit=limit)
        return {"access_requests": [shown(r, who) for r in found], "count": len(found)}

    @router.get("/{request_id}", responses=errors(401, 403, 404, 422, 503))
    def show(request_id: str, who: ApiToken = anyone) -> dict[str, Any]:
        try:
            request = own(request_id, who)
            history = desk.store.history(request.id)
        except AccessError as exc:
            raise _problem(exc) from None
        if who.role < Role.VIEWER:
            return {**requester_view(request), "history": requester_history(history)}
        return {**request.to_dict(), "history": history}

    @router.post("/{request_id}/approve", responses=errors(*decided))
    def approve(request_id: str, who: ApiToken = approver, body: DecisionBody | None = None
                ) -> dict[str, Any]:
        return guarded(lambda: desk.approve(request_id, acting(who),
                                            body.comment if body else None), who)

    @router.post("/{request_id}/deny", responses=errors(*decided))
    def deny(request_id: str, who: ApiToken = approver, body: DecisionBody | None = None
             ) -> dict[str, Any]:
        return guarded(lambda: desk.deny(request_id, acting(who),
                                         body.comment if body else None), who)

    @router.post("/{request_id}/revoke", responses=errors(*decided))
    def revoke(request_id: str, who: ApiToken = anyone, body: DecisionBody | None = None
               ) -> dict[str, Any]:
        def revoked() -> AccessRequest:
            return desk.revoke(own(request_id, who).id, acting(who),
                               body.comment if body else None)

        return guarded(revoked, who)

    return router
