"""The service's access-request routes (`/v1/access-requests`), over the AccessDesk the CLI
uses too. Any authenticated caller asks for themselves (the token's name is the requester);
approvers approve and deny; the requester or a responder revokes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from .access import AccessDesk, ActionRegistry, Caller
from .access_playbook import AccessPlaybook
from .access_store import (
    AccessError,
    AccessForbidden,
    AccessState,
    AccessStore,
    RegistryError,
    TransitionRefused,
    UnknownRequest,
)
from .problems import ServiceProblem
from .service import Service
from .settings import ApiToken, Role

CallerCheck = Callable[[Role], Callable[..., ApiToken]]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # no `requester`: the caller's token says who
    model: str = Field(min_length=1, max_length=500)
    version: str | None = Field(default=None, max_length=100)
    alias: str | None = Field(default=None, max_length=256)
    access: Literal["read", "download"] = "read"
    justification: str = Field(max_length=4000)
    duration_hours: float | None = Field(default=None, gt=0, le=8760)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(default=None, max_length=4000)


def desk_for(service: Service) -> AccessDesk | None:
    """The service's desk: the journal (its SQLite file or PostgreSQL database), policy,
    registry connections and the access playbook (run in the same journal)."""
    return AccessDesk(AccessStore(service.journal), service.policy,
                      ActionRegistry(service.host, service.config),
                      AccessPlaybook(service.host, service.config, service.journal))


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
    # Defaults, not Annotated aliases: the annotations are strings resolved in this module.
    viewer = Depends(caller(Role.VIEWER))
    approver = Depends(caller(Role.APPROVER))

    def acting(token: ApiToken) -> Caller:
        return Caller(token.name, token.role)

    def guarded(work: Callable[[], Any]) -> dict[str, Any]:
        try:
            result: dict[str, Any] = work().to_dict()
            return result
        except AccessError as exc:
            raise _problem(exc) from None

    asked = (400, 401, 403, 422, 502, 503)
    decided = (400, 401, 403, 404, 409, 422, 502, 503)

    @router.post("", status_code=201, responses=errors(*asked))
    def create(body: RequestBody, who: ApiToken = viewer) -> dict[str, Any]:
        seconds = None if body.duration_hours is None else round(body.duration_hours * 3600)
        return guarded(lambda: desk.request(
            who.name, body.model, body.justification, duration_seconds=seconds,
            access=body.access, version=body.version, alias=body.alias))

    @router.get("", responses=errors(401, 403, 422, 503))
    def listing(who: ApiToken = viewer, state: AccessState | None = None,
                requester: str | None = None, model: str | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        found = desk.store.find(state=state, requester=requester, model=model, limit=limit)
        return {"access_requests": [r.to_dict() for r in found], "count": len(found)}

    @router.get("/{request_id}", responses=errors(401, 403, 404, 422, 503))
    def show(request_id: str, who: ApiToken = viewer) -> dict[str, Any]:
        try:
            return {**desk.store.get(request_id).to_dict(),
                    "history": desk.store.history(request_id)}
        except AccessError as exc:
            raise _problem(exc) from None

    @router.post("/{request_id}/approve", responses=errors(*decided))
    def approve(request_id: str, who: ApiToken = approver, body: DecisionBody | None = None
                ) -> dict[str, Any]:
        return guarded(lambda: desk.approve(request_id, acting(who),
                                            body.comment if body else None))

    @router.post("/{request_id}/deny", responses=errors(*decided))
    def deny(request_id: str, who: ApiToken = approver, body: DecisionBody | None = None
             ) -> dict[str, Any]:
        return guarded(lambda: desk.deny(request_id, acting(who),
                                         body.comment if body else None))

    @router.post("/{request_id}/revoke", responses=errors(*decided))
    def revoke(request_id: str, who: ApiToken = viewer, body: DecisionBody | None = None
               ) -> dict[str, Any]:
        return guarded(lambda: desk.revoke(request_id, acting(who),
                                           body.comment if body else None))

    return router
