"""The console's plumbing: templates (Jinja2, sandboxed, autoescaped), the session cookie,
CSRF checks, form bodies and the page-shaped refusals. The routes are in routes.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from ..settings import Role
from .sessions import Session, SessionStore
from .views import time_left, when

HERE = Path(__file__).parent
COOKIE = "crownguard_session"
SECURE_ENV = "CROWNGUARD_CONSOLE_SECURE_COOKIE"  # 1: Secure cookies even without a proxy's hint
MAX_FORM_BYTES = 16384
HEADERS = {  # every console page: nothing but our own files, never framed, never cached
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


class ConsoleRefusal(Exception):
    """A request the console turns down with a page (403, 404, 400...)."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class SignInFirst(Exception):
    """A page asked for without a session: go to the sign-in page, then come back."""

    def __init__(self, back: str):
        super().__init__(back)
        self.back = back


def environment() -> SandboxedEnvironment:
    """Our own templates only (never a user's), escaped whatever their file name."""
    env = SandboxedEnvironment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True,
                                                            default_for_string=True),
                               trim_blocks=True,
                               lstrip_blocks=True)
    env.filters["time_left"] = time_left
    env.filters["when"] = when
    env.filters["short"] = lambda run_id: (run_id or "")[:8]
    env.globals["query"] = lambda **kw: urlencode({k: v for k, v in kw.items() if v})
    return env


class Pages:
    def __init__(self, sessions: SessionStore, secure: bool | None = None):
        self.sessions = sessions  # signed-in and sign-in page sessions (sessions.py)
        self.env = environment()
        self.secure = (os.environ.get(SECURE_ENV, "") in ("1", "true", "yes")
                       if secure is None else secure)

    def session(self, request: Request) -> Session | None:
        """The request's session: signed in, or a visitor's on the sign-in page."""
        return self.sessions.get(request.cookies.get(COOKIE))

    def forget(self, session: Session) -> None:
        self.sessions.drop(session.id)

    def signed_in(self, request: Request, role: Role = Role.VIEWER) -> Session:
        """The signed-in session, of `role` or above; else a sign-in redirect or a 403."""
        session = self.session(request)
        if session is None or session.role is None:
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInFirst(back)
        if session.role < role:
            raise ConsoleRefusal(403, "Not allowed", f"{session.name} is a {session.role}; "
                                 f"this needs {role} or above.")
        return session

    async def posted(self, request: Request, role: Role) -> tuple[Session, dict[str, str]]:
        """A form POST's session (of `role` or above) and fields, its CSRF token checked."""
        fields = await form(request)
        session = self.session(request)
        if session is None or not session.csrf_ok(fields.get("csrf")):
            raise ConsoleRefusal(403, "Refused", "The form's security token is missing or "
                                 "out of date: reload the page and try again.")
        if session.role is None:
            raise ConsoleRefusal(403, "Refused", "Sign in first.")
        if session.role < role:
            raise ConsoleRefusal(403, "Not allowed", f"{session.name} is a {session.role}; "
                                 f"this needs {role} or above.")
        return session, fields

    def is_secure(self, request: Request) -> bool:
        return (self.secure or request.url.scheme == "https"
                or request.headers.get("x-forwarded-proto", "").split(",")[0].strip() == "https")

    def set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict",
                            secure=self.is_secure(request), path="/ui")

    def render(self, request: Request, template: str, session: Session | None,
               code: int = 200, **context: Any) -> HTMLResponse:
        page = self.env.get_template(template).render(
            session=session, notices=session.take_notices() if session else [],
            path=request.url.path, Role=Role, **context)
        return HTMLResponse(page, status_code=code, headers=HEADERS)

    def refusal(self, request: Request, exc: ConsoleRefusal) -> HTMLResponse:
        session = self.session(request)
        return self.render(request, "error.html", session if session and session.role
                           else None, code=exc.status, title=exc.title,
                           message=exc.message)


def back_to(path: str) -> RedirectResponse:
    """After a POST, the page to show (303: the browser GETs it)."""
    return RedirectResponse(path, status_code=303, headers=HEADERS)


async def form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, each field's first value."""
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise ConsoleRefusal(413, "Too large", f"A form may send at most {MAX_FORM_BYTES} "
                                 "bytes.")
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", "replace")
    try:
        parsed = parse_qs(text, keep_blank_values=True, max_num_fields=32)
    except ValueError:
        raise ConsoleRefusal(400, "Bad form", "The form sent too many fields.") from None
    return {key: values[0] for key, values in parsed.items()}
