"""The console's routes under /ui/: sign-in, runs, a run (graph, timeline, answers and
controls), audit and playbooks. Runs are read and acted on through `crownguard.engine.runs`,
the functions the API and the CLI call, as the signed-in token's name (`by`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ... import run_undo, runs
from ...approvers import refusal
from ...errors import CrownguardError, UnknownRun
from ...journal.postgres import PostgresJournal
from ...kinds import ENDED, RERUNNABLE, RunKind, RunStatus
from ..service import Service
from ..settings import Role
from .audit import AuditFilter, audit_page
from .desk import mount_desk
from .pages import COOKIE, HEADERS, HERE, ConsoleRefusal, Pages, SignInFirst, back_to, form
from .runlist import RunFilter, RunList
from .runlist_pg import PostgresRunList
from .scenarios import ScenarioIndex
from .sessions import Session, SessionStore
from .sessions_pg import PostgresSessionStore
from .views import changes_made, graph_view, timeline_rows, who_acted

PAGE = 50
PAST = {"approve": "approved", "reject": "rejected"}


def mount_console(app: FastAPI, service: Service, *, secure_cookies: bool | None = None
                  ) -> Pages:
    """Add the console's routes, its static files and its refusal pages to the service's app.
    Sessions and the run list live in the journal: its SQLite file, or its PostgreSQL
    database (the twins in sessions_pg and runlist_pg)."""
    sessions, listing = _stores(service)
    service._closing.callback(sessions.close)  # closed with the service's journal
    pages = Pages(sessions, secure_cookies, tokens=lambda: service.settings.tokens)
    scenarios = ScenarioIndex()
    service._closing.callback(listing.close)
    app.state.console = pages
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(ConsoleRefusal)
    async def _refused(request: Request, exc: ConsoleRefusal) -> HTMLResponse:
        return pages.refusal(request, exc)

    @app.exception_handler(SignInFirst)
    async def _sign_in(request: Request, exc: SignInFirst) -> RedirectResponse:
        return RedirectResponse(f"/ui/login?{_q(next=exc.back)}", status_code=303,
                                headers=HEADERS)

    def detail_of(run_id: str) -> Any:
        try:
            return runs.show(service.journal, service.host, run_id)
        except UnknownRun as exc:
            raise ConsoleRefusal(404, "No such run", str(exc)) from None
        except CrownguardError as exc:
            raise ConsoleRefusal(400, "Which run?", str(exc)) from None

    def waits_of(run_id: str) -> list[Any]:
        """A waiting run's open waits and deadlines, from the journal's open_waits table (no
        replay of the run: the runs page is fetched again whenever the journal moves)."""
        found = service.journal.open_waits(run_id)
        if found:
            return [{"step": w.step_id, "expires_at": None if w.expires_at is None else
                     datetime.fromtimestamp(w.expires_at, UTC).isoformat().replace(
                         "+00:00", "Z")} for w in found]
        try:  # a journal from before that table: the run's own record says
            return list(runs.show(service.journal, service.host, run_id).waiting)
        except CrownguardError:
            return []

    # --- signing in and out -----------------------------------------------------------------

    @app.get("/ui", include_in_schema=False)
    @app.get("/ui/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/runs", status_code=303)

    @app.get("/ui/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/ui/runs") -> HTMLResponse:
        session = pages.session(request)
        if session is None:
            session = pages.sessions.new()
        response = pages.render(request, "login.html", session, csrf=session.csrf,
                                next=_local(next), failed=False)
        pages.set_cookie(request, response, session)
        return response

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields = await form(request)
        session = pages.session(request)
        if session is None or not session.csrf_ok(fields.get("csrf")):
            raise ConsoleRefusal(403, "Refused", "The sign-in form is out of date: reload "
                                 "the page and sign in again.")
        token = service.settings.caller(fields.get("token", ""))
        if token is None:
            return pages.render(request, "login.html", session, code=401,
                                csrf=session.csrf, next=_local(fields.get("next", "")),
                                failed=True)
        if token.role < Role.VIEWER:  # a requester asks over the API and sees nothing here
            raise ConsoleRefusal(403, "Not allowed", f"{token.name} is a {token.role}: "
                                 "the console needs viewer or above.")
        pages.forget(session)  # a new id once signed in: no session fixation
        signed = pages.sessions.new(token.name, token.role, token.token.reveal())
        response = back_to(_local(fields.get("next", "")))
        pages.set_cookie(request, response, signed)
        return response

    @app.post("/ui/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        session, _ = await pages.posted(request, Role.VIEWER)
        pages.forget(session)
        response = back_to("/ui/login")
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # --- runs -------------------------------------------------------------------------------

    @app.get("/ui/runs", include_in_schema=False)
    def runs_page(request: Request, status: str = "", playbook: str = "", person: str = "",
                  since: str = "", until: str = "", cursor: str = "") -> HTMLResponse:
        session = pages.signed_in(request)
        filters = RunFilter.from_form(status, playbook, person, since, until)
        head = service.journal.head()[0]  # before reading: a change after it shows next poll
        found, following = listing.page(filters, PAGE, cursor or None)
        waits = {run.run_id: waits_of(run.run_id) for run in found
                 if run.status == RunStatus.WAITING}
        shown: dict[str, Any] = {"status": status, "playbook": playbook, "person": person,
                                 "since": since, "until": until}
        return pages.render(
            request, "runs.html", session, head=head, runs=found, waits=waits,
            next_cursor=following, cursor=cursor, statuses=[str(s) for s in RunStatus],
            counts=listing.counts(filters),
            filtered=any(shown.values()), shown=shown, **shown,
            playbooks=sorted(set(listing.playbooks()) | set(service.triage.router.playbooks)))

    @app.get("/ui/live.json", include_in_schema=False)
    def live(request: Request) -> JSONResponse:
        """What the runs and access pages' script polls: the journal's last entry. When it
        moves past the page's, the script fetches the page again and swaps its live parts."""
        session = pages.session(request)
        if session is None or session.role is None:
            return JSONResponse({"error": "signed out"}, status_code=401, headers=HEADERS)
        return JSONResponse({"head": service.journal.head()[0]}, headers=HEADERS)

    @app.get("/ui/runs/{run_id}", include_in_schema=False)
    def run_page(request: Request, run_id: str) -> HTMLResponse:
        session = pages.signed_in(request)
        detail = detail_of(run_id)
        run = detail.run
        playbook = runs.stored_playbook(run, service.host)
        statuses = {sid: step["status"] for sid, step in detail.record["steps"].items()}
        waiting = []
        for wait in detail.waiting:
            allowed = list(wait.approvers) or list(service.config.approvers)
            may = (session.role is not None and session.role >= Role.APPROVER
                   and refusal(str(session.name), allowed) is None)
            waiting.append({"step": wait.step, "reason": wait.reason, "approvers": allowed,
                            "expires_at": wait.expires_at, "may_answer": may})
        inputs = run.inputs or {}
        return pages.render(
            request, "run.html", session, run=run, record=detail.record, playbook=playbook,
            graph=graph_view(playbook, statuses), waiting=waiting,
            timeline=timeline_rows(detail.events), approvals=detail.approvals,
            actions=who_acted(detail.events), event=inputs.get("event") or {},
            risk=inputs.get("risk") or {}, csrf=session.csrf,
            can_cancel=run.status not in ENDED,
            can_rerun=run.status in RERUNNABLE and run.kind != RunKind.UNDO,
            can_undo=run.kind != RunKind.UNDO,
            changes=changes_made(playbook, detail.events, service.host),
            undone_by=[{"run_id": u.run_id, "status": u.status, "created_at": u.created_at,
                        "by": next((a["by"] for a in who_acted(service.journal.events(u.run_id))
                                    if a["action"] == "started"), None)}
                       for u in service.journal.list_runs(kind=RunKind.UNDO,
                                                          parent_run_id=run.run_id)],
            reruns=service.journal.list_runs(kind=RunKind.RERUN, parent_run_id=run.run_id))

    @app.get("/ui/runs/{run_id}/state.json", include_in_schema=False)
    def run_state(request: Request, run_id: str) -> JSONResponse:
        """What the run page's script polls: the run's status and each step's."""
        session = pages.session(request)
        if session is None or session.role is None:
            return JSONResponse({"error": "signed out"}, status_code=401, headers=HEADERS)
        try:
            detail = runs.show(service.journal, service.host, run_id)
        except CrownguardError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404, headers=HEADERS)
        return JSONResponse({"status": detail.record["status"],
                             "updated_at": detail.run.updated_at,
                             "steps": {sid: s["status"] for sid, s in
                                       detail.record["steps"].items()},
                             "waiting": [w.step for w in detail.waiting]}, headers=HEADERS)

    async def act(request: Request, run_id: str, role: Role, what: str,
                  call: Any) -> Response:
        """A control's POST: checked, done as the signed-in name, shown on the run's page."""
        session, fields = await pages.posted(request, role)

        def guarded() -> tuple[str, str, str | None]:
            target = f"/ui/runs/{detail_of(run_id).run.run_id}"
            try:
                with service.operation(run_id):  # in the worker thread: one per run at a time
                    return (target, *call(session, fields))
            except CrownguardError as exc:
                return target, f"!{what}: {exc}", None

        target, message, goes_to = await run_in_threadpool(guarded)
        session.notice("error" if message.startswith("!") else "ok", message.lstrip("!"))
        return back_to(goes_to or target)

    @app.post("/ui/runs/{run_id}/steps/{step_id}/answer", include_in_schema=False)
    async def answer(request: Request, run_id: str, step_id: str) -> Response:
        def call(session: Session, fields: dict[str, str]) -> tuple[str, str | None]:
            decision = fields.get("decision", "")
            if decision not in ("approve", "reject"):
                raise ConsoleRefusal(400, "Bad answer", "decision must be approve or reject")
            result = runs.answer(service.journal, service.host, run_id, step_id, decision,
                                 by=str(session.name), comment=fields.get("comment") or None,
                                 config_path=service.config_path)
            if not result.accepted:
                return f"!Refused and recorded: {result.reason}", None
            status = result.outcome.status if result.outcome else "?"
            return f"{PAST[decision].capitalize()} '{step_id}'; the run is now {status}.", None
        return await act(request, run_id, Role.APPROVER, "Answer", call)

    @app.post("/ui/runs/{run_id}/cancel", include_in_schema=False)
    async def cancel(request: Request, run_id: str) -> Response:
        def call(session: Session, fields: dict[str, str]) -> tuple[str, str | None]:
            runs.cancel(service.journal, service.host, run_id, by=str(session.name),
                        reason=fields.get("reason") or None, config_path=service.config_path)
            return "Cancelled the run.", None
        return await act(request, run_id, Role.RESPONDER, "Cancel", call)

    @app.post("/ui/runs/{run_id}/undo", include_in_schema=False)
    async def undo(request: Request, run_id: str) -> Response:
        def call(session: Session, fields: dict[str, str]) -> tuple[str, str | None]:
            plan = run_undo.prepare_undo(service.journal, service.host, run_id,
                                     config_path=service.config_path)
            result = run_undo.undo(service.journal, service.host, plan, by=str(session.name))
            return (f"Undo run {result.undo_run_id[:8]} is {result.outcome.status} "
                    f"({len(result.calls)} undo calls).", f"/ui/runs/{result.undo_run_id}")
        return await act(request, run_id, Role.RESPONDER, "Undo", call)

    @app.post("/ui/runs/{run_id}/rerun", include_in_schema=False)
    async def rerun(request: Request, run_id: str) -> Response:
        def call(session: Session, fields: dict[str, str]) -> tuple[str, str | None]:
            outcome = runs.rerun(service.journal, service.host, run_id, by=str(session.name),
                                 config_path=service.config_path)
            return f"Started rerun {outcome.run_id[:8]}: {outcome.status}.", \
                f"/ui/runs/{outcome.run_id}"
        return await act(request, run_id, Role.RESPONDER, "Rerun", call)

    mount_desk(app, service, pages)  # intake and access requests

    # --- audit and playbooks ----------------------------------------------------------------

    @app.get("/ui/audit", include_in_schema=False)
    def audit(request: Request, run: str = "", kind: str = "", type: str = "", by: str = "",
              since: str = "", until: str = "", since_seq: str = "0",
              verify: str = "") -> HTMLResponse:
        session = pages.signed_in(request)
        filters = AuditFilter(run, kind, type, by, since, until)
        return pages.render(request, "audit.html", session,
                            **audit_page(service.journal, filters, since_seq, bool(verify)))

    @app.get("/ui/playbooks", include_in_schema=False)
    def playbooks(request: Request) -> HTMLResponse:
        session = pages.signed_in(request)
        router = service.triage.router
        shown = [(p, graph_view(p), scenarios.testing(p)) for p in router.playbooks.values()]
        broken = {s.file: s.problem for p in router.playbooks.values()
                  for s in scenarios.broken(p)}
        return pages.render(request, "playbooks.html", session, playbooks=shown,
                            untriggered=list(router.untriggered), broken=broken)

    return pages


def _stores(service: Service) -> tuple[SessionStore, RunList | PostgresRunList]:
    journal = service.journal
    if isinstance(journal, PostgresJournal):
        return PostgresSessionStore(journal), PostgresRunList(journal)
    path = getattr(journal, "path", None)
    if not isinstance(path, Path):
        raise TypeError(f"the console needs a SQLite or PostgreSQL journal, not {journal!r}")
    return SessionStore(path), RunList(path)


def _local(path: str) -> str:
    """A console path to go back to after signing in: never another site's."""
    if path.startswith("/ui/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/ui/runs"


def _q(**fields: str) -> str:
    return urlencode(fields)
