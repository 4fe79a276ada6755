"""The console's intake and access-request pages: dead-lettered events and the intake's
counts; pending model access requests (approve, deny), grants with their time left (revoke).
Access requests are decided through the AccessDesk the API's routes call, so the approver
checks are the API's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ..access import AccessDesk, Caller
from ..access_routes import desk_for
from ..access_store import AccessError, AccessRequest, AccessState
from ..service import Service
from ..settings import Role
from .pages import ConsoleRefusal, Pages, back_to

DEAD_PAGE = 50
SHOWN = 100  # requests of each state on the access page
PAST = {"approve": "Approved", "deny": "Denied", "revoke": "Revoked"}


def intake_counts(service: Service) -> dict[str, Any]:
    """What the intake took and refused: the stored items by status and the dead letters by
    source (the journal's, every process's), and this process's accepted and refused event
    requests since it started (its metrics)."""
    accepted: dict[str, dict[str, int]] = {}
    refused: dict[str, dict[str, int]] = {}
    for counter, into, key in ((service.metrics.events_accepted, accepted, "duplicate"),
                               (service.metrics.events_refused, refused, "code")):
        for family in counter.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    by = into.setdefault(sample.labels["source"], {})
                    label = sample.labels[key]
                    by[label] = by.get(label, 0) + int(sample.value)
    return {"items": service.store.counts(), "dead": service.store.dead_letter_counts(),
            "accepted": {s: {"new": c.get("false", 0), "duplicate": c.get("true", 0)}
                         for s, c in sorted(accepted.items())},
            "refused": {s: dict(sorted(c.items())) for s, c in sorted(refused.items())}}


def may_decide(desk: AccessDesk, request: AccessRequest, who: Caller) -> str | None:
    """Why `who` may not approve or deny this request (None: they may), by the desk's own
    rules: the approver role, not one's own request, the approvers the policy named."""
    if who.role < Role.APPROVER:
        return f"deciding needs the approver role; you are a {who.role}"
    if who.name == request.requester:
        return "it is your own request"
    if request.state == AccessState.DENIED:
        return None if who.role >= Role.ADMIN else "only an admin can override a denial"
    if any(a.get("by") == who.name for a in request.approvals):
        return "you have approved it already"
    try:
        desk._may_decide(request, who)  # the check approve() and deny() make
    except AccessError as exc:
        return str(exc)
    return None


def may_revoke(request: AccessRequest, who: Caller) -> bool:
    return who.name == request.requester or who.role >= Role.RESPONDER


def mount_desk(app: FastAPI, service: Service, pages: Pages) -> None:
    desk = desk_for(service)
    if desk is not None:
        service._closing.callback(desk.store.close)  # closed with the service's journal

    @app.get("/ui/intake", include_in_schema=False)
    def intake(request: Request, after: str = "0") -> HTMLResponse:
        session = pages.signed_in(request)
        try:
            since = int(after or 0)
        except ValueError:
            raise ConsoleRefusal(400, "Bad filter", "after must be a whole number") from None
        letters = service.store.dead_letters(limit=DEAD_PAGE + 1, after=since)
        more = len(letters) > DEAD_PAGE
        letters = letters[:DEAD_PAGE]
        return pages.render(request, "intake.html", session, letters=letters, after=since,
                            next_after=letters[-1]["id"] if more else None,
                            **intake_counts(service))

    @app.get("/ui/access", include_in_schema=False)
    def access(request: Request) -> HTMLResponse:
        session = pages.signed_in(request)
        if desk is None:
            return pages.render(request, "access.html", session, available=False)
        who = Caller(str(session.name), session.role or Role.VIEWER)
        pending = [(r, may_decide(desk, r, who))
                   for r in desk.store.find(state=AccessState.PENDING, limit=SHOWN)]
        granted = [(r, may_revoke(r, who))
                   for r in desk.store.find(state=AccessState.GRANTED, limit=SHOWN)]
        granted.sort(key=lambda pair: pair[0].expires_at or "")
        approved = [(r, may_revoke(r, who))
                    for r in desk.store.find(state=AccessState.APPROVED, limit=SHOWN)]
        ended = sorted((r for state in (AccessState.DENIED, AccessState.EXPIRED,
                                        AccessState.REVOKED)
                        for r in desk.store.find(state=state, limit=SHOWN)),
                       key=lambda r: r.updated_at, reverse=True)[:SHOWN]
        return pages.render(request, "access.html", session, available=True,
                            pending=pending, granted=granted, approved=approved, ended=ended,
                            csrf=session.csrf)

    async def decide(request: Request, request_id: str, what: str, role: Role) -> Response:
        session, fields = await pages.posted(request, role)
        if desk is None:
            raise ConsoleRefusal(501, "Not available", "access requests need the SQLite "
                                 "journal in this version")
        who = Caller(str(session.name), session.role or Role.VIEWER)
        comment = (fields.get("comment") or "").strip() or None
        acts: dict[str, Callable[[str, Caller, str | None], AccessRequest]] = {
            "approve": desk.approve, "deny": desk.deny, "revoke": desk.revoke}
        act = acts[what]

        def done() -> tuple[str, str]:
            try:
                changed = act(request_id, who, comment)
            except AccessError as exc:
                return "error", f"{what.capitalize()} refused: {exc}"
            return "ok", (f"{PAST[what]} access request {changed.id[:8]} ({changed.model} "
                          f"for {changed.requester}); it is now {changed.state}.")

        kind, message = await run_in_threadpool(done)
        session.notice(kind, message)
        return back_to("/ui/access")

    @app.post("/ui/access/{request_id}/approve", include_in_schema=False)
    async def approve(request: Request, request_id: str) -> Response:
        return await decide(request, request_id, "approve", Role.APPROVER)

    @app.post("/ui/access/{request_id}/deny", include_in_schema=False)
    async def deny(request: Request, request_id: str) -> Response:
        return await decide(request, request_id, "deny", Role.APPROVER)

    @app.post("/ui/access/{request_id}/revoke", include_in_schema=False)
    async def revoke(request: Request, request_id: str) -> Response:
        return await decide(request, request_id, "revoke", Role.VIEWER)  # the desk checks
