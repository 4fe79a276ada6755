"""Console sessions, kept in the journal's SQLite file (table `console_sessions`), so that a
restart signs nobody out and several service processes on one journal share them.

The cookie holds a random id (secrets.token_urlsafe); the table holds only its SHA-256, so a
copy of the journal lets nobody take over a session. A row knows who signed in (the token's
name and role, never the token), the session's CSRF token, when it was last used, when it
ends at the latest, and the notices waiting to be shown once. Signing out deletes the row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import JournalError
from ..settings import Role

IDLE_SECONDS = 8 * 3600  # a session unused this long is gone
MAX_AGE_SECONDS = 24 * 3600  # and any session this long after sign-in
MAX_SESSIONS = 10_000  # of each kind; past this, the least recently used go first
TOUCH_SECONDS = 60.0  # `seen` is written at most this often (a page view is then no write)

SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
    id_sha256 TEXT PRIMARY KEY, csrf TEXT NOT NULL, name TEXT, role TEXT,
    created REAL NOT NULL, seen REAL NOT NULL, expires REAL NOT NULL,
    notices TEXT NOT NULL DEFAULT '[]');
CREATE INDEX IF NOT EXISTS console_sessions_by_seen ON console_sessions (name IS NULL, seen);
"""


def digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    """A browser's session: anonymous (the sign-in page) until `name` and `role` are set."""

    id: str
    csrf: str
    name: str | None = None
    role: Role | None = None
    store: SessionStore | None = field(default=None, repr=False, compare=False)

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())

    def notice(self, kind: str, text: str) -> None:
        """A message for the next page this session sees (in whichever process serves it)."""
        if self.store is not None:
            self.store.add_notice(self.id, kind, text)

    def take_notices(self) -> list[tuple[str, str]]:
        return self.store.take_notices(self.id) if self.store is not None else []


class SessionStore:
    """The sessions table on the journal's file; one connection under a lock."""

    def __init__(self, path: str | Path, *, idle_seconds: float = IDLE_SECONDS,
                 max_age: float = MAX_AGE_SECONDS, limit: int = MAX_SESSIONS,
                 busy_timeout: float = 30.0):
        self.path = Path(path)
        self._idle, self._max_age, self._limit = idle_seconds, max_age, limit
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the console's sessions in {self.path}: {exc}"
                               ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"console sessions in {self.path}: {exc}") from None

    def new(self, name: str | None = None, role: Role | None = None) -> Session:
        """A new session (signed in when `name` and `role` are given, else a visitor's)."""
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), name, role,
                          self)
        now = time.time()
        self.prune(now, signed_in=name is not None)
        self._run("INSERT INTO console_sessions (id_sha256, csrf, name, role, created, seen, "
                  "expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (digest(session.id), session.csrf, name, None if role is None else role.name,
                   now, now, now + self._max_age))
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The session with this id, unless it is unknown, idle too long or past its age."""
        if not session_id:
            return None
        key, now = digest(session_id), time.time()
        rows = self._run("SELECT csrf, name, role, seen, expires FROM console_sessions WHERE "
                         "id_sha256 = ?", (key,))
        if not rows:
            return None
        csrf, name, role, seen, expires = rows[0]
        if now - seen > self._idle or now > expires or (name is not None and role not in
                                                        Role.__members__):
            self._run("DELETE FROM console_sessions WHERE id_sha256 = ?", (key,))
            return None
        if now - seen > TOUCH_SECONDS:
            self._run("UPDATE console_sessions SET seen = ? WHERE id_sha256 = ?", (now, key))
        return Session(session_id, csrf, name, None if role is None else Role[role], self)

    def drop(self, session_id: str) -> None:
        self._run("DELETE FROM console_sessions WHERE id_sha256 = ?", (digest(session_id),))

    def _change_notices(self, session_id: str, change: Any) -> list[tuple[str, str]]:
        """Read and rewrite a session's notices in one transaction; the ones read back."""
        key = digest(session_id)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT notices FROM console_sessions WHERE "
                                       "id_sha256 = ?", (key,)).fetchone()
                found = [] if row is None else [(str(k), str(t)) for k, t in
                                                 json.loads(row[0])]
                if row is not None:
                    self._db.execute("UPDATE console_sessions SET notices = ? WHERE "
                                     "id_sha256 = ?", (json.dumps(change(found)), key))
                self._db.execute("COMMIT")
                return found
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise JournalError(f"console sessions in {self.path}: {exc}") from None

    def add_notice(self, session_id: str, kind: str, text: str) -> None:
        self._change_notices(session_id, lambda found: [*found, (kind, text)][-10:])

    def take_notices(self, session_id: str) -> list[tuple[str, str]]:
        """The session's notices, each shown once: read and cleared together."""
        return self._change_notices(session_id, lambda found: [])

    def prune(self, now: float | None = None, *, signed_in: bool = True) -> None:
        """Forget ended sessions, and the least recently used of a kind past the limit (a
        flood of sign-in pages pushes out only other visitors, never a signed-in session)."""
        now = time.time() if now is None else now
        self._run("DELETE FROM console_sessions WHERE seen < ? OR expires < ?",
                  (now - self._idle, now))
        self._run("DELETE FROM console_sessions WHERE id_sha256 IN (SELECT id_sha256 FROM "
                  "console_sessions WHERE (name IS NULL) = ? ORDER BY seen DESC LIMIT -1 "
                  "OFFSET ?)", (not signed_in, max(self._limit - 1, 0)))

    def count(self, *, signed_in: bool | None = None) -> int:
        rows = self._run("SELECT count(*) FROM console_sessions WHERE ?1 IS NULL OR "
                         "(name IS NOT NULL) = ?1", (signed_in,))
        return int(rows[0][0])
