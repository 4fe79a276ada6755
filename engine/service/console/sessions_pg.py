"""Console sessions in a PostgreSQL journal's database: the same table and statements as
`sessions.SessionStore` (the table comes with the journal's migrations), read and written
through the journal's own connection pool."""

from __future__ import annotations

import json
from typing import Any

from ...journal.postgres import PostgresJournal
from .sessions import IDLE_SECONDS, MAX_AGE_SECONDS, MAX_SESSIONS, SessionStore, digest


class PostgresSessionStore(SessionStore):
    _ALL_AFTER = "OFFSET ?"

    def __init__(self, journal: PostgresJournal, *, idle_seconds: float = IDLE_SECONDS,
                 max_age: float = MAX_AGE_SECONDS, limit: int = MAX_SESSIONS):
        self.journal = journal
        self._idle, self._max_age, self._limit = idle_seconds, max_age, limit

    def close(self) -> None:
        pass  # the pool is the journal's

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        # A read on a pooled autocommit connection, a write in one short transaction; either
        # way a database error is a JournalError naming the journal, its password masked.
        reading = sql.startswith("SELECT")
        with self.journal._read() if reading else self.journal._write() as conn:
            cursor = conn.execute(sql.replace("?", "%s"), args)
            rows = cursor.fetchall() if cursor.description else []
        return [tuple(row.values()) for row in rows]

    def _change_notices(self, session_id: str, change: Any) -> list[tuple[str, str]]:
        """Read and rewrite a session's notices under the row's lock; the ones read back."""
        key = digest(session_id)
        with self.journal._write() as conn:
            row = conn.execute("SELECT notices FROM console_sessions WHERE id_sha256 = %s "
                               "FOR UPDATE", (key,)).fetchone()
            found = [] if row is None else [(str(k), str(t)) for k, t in
                                             json.loads(row["notices"])]
            if row is not None:
                conn.execute("UPDATE console_sessions SET notices = %s WHERE id_sha256 = %s",
                             (json.dumps(change(found)), key))
        return found
