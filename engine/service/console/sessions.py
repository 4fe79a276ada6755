"""Console sessions: random ids (secrets.token_urlsafe) mapped, in this process's memory, to
who signed in and the session's CSRF token. The API token itself is never kept: a session
knows the token's name and role only. A restart signs everyone out (a store that outlives
the process is for later)."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from ..settings import Role

IDLE_SECONDS = 8 * 3600  # a session unused this long is gone
MAX_SESSIONS = 10_000  # past this, the least recently used go first (sign-in pages make some)


@dataclass
class Session:
    """A browser's session: anonymous (the sign-in page) until `name` and `role` are set."""

    id: str
    csrf: str
    name: str | None = None
    role: Role | None = None
    seen: float = field(default_factory=time.monotonic)
    notices: list[tuple[str, str]] = field(default_factory=list)  # (kind, text), shown once

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())

    def notice(self, kind: str, text: str) -> None:
        self.notices.append((kind, text))

    def take_notices(self) -> list[tuple[str, str]]:
        taken, self.notices = self.notices, []
        return taken


class SessionStore:
    def __init__(self, idle_seconds: float = IDLE_SECONDS, limit: int = MAX_SESSIONS):
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._idle, self._limit = idle_seconds, limit

    def new(self, name: str | None = None, role: Role | None = None) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), name, role)
        with self._lock:
            self._prune()
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.seen > self._idle:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._sessions.items() if now - v.seen > self._idle]:
            del self._sessions[sid]
        if len(self._sessions) >= self._limit:
            oldest = sorted(self._sessions.values(), key=lambda s: s.seen)
            for session in oldest[:len(self._sessions) - self._limit + 1]:
                del self._sessions[session.id]

    def __len__(self) -> int:
        return len(self._sessions)
