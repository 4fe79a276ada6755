"""Dedupe claims in the PostgreSQL journal's database (table `dedupe_starts`).

`PostgresDedupe` has the methods of `triage.dedupe.DedupeStore` (last_start, claim, claim_of,
started, run_of, release): processes on any number of machines that respond to events over one
journal database start a playbook once per file and person within the window. A claim is one
transaction on the key's row (inserted, or locked `FOR UPDATE`), so two claimers of one key
cannot both win. A claim notes its claimant (migration 4), so an intake item processed again
after a kill -9 knows the claim it left for its own.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import JournalError, JournalUnavailable
from .dedupe_claims import DedupeClaim
from .postgres_schema import Target, migrate


class PostgresDedupe:
    """Dedupe state beside a PostgreSQL journal: one connection, used under a lock, opened
    again when the database dropped it (a restart)."""

    def __init__(self, dsn: str, *, connect_timeout: float = 10.0):
        import psycopg

        self.target = Target.parse(dsn)
        self.name = self.target.name
        self._lock = threading.Lock()
        self._connect_timeout = max(1, int(connect_timeout))
        self._closed = False
        try:
            self._conn = psycopg.connect(dsn, autocommit=True,
                                         connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            raise JournalError(f"dedupe store {self.name}: {self.target.message(exc)}"
                               ) from None
        with self._errors():
            migrate(self._db, self.name)

    @property
    def _db(self) -> Any:
        """The connection (lock held, inside `_errors`), a new one once the old is broken."""
        if not self._closed and (self._conn.closed or self._conn.broken):
            import psycopg

            self._conn.close()
            self._conn = psycopg.connect(self.target.dsn, autocommit=True,
                                         connect_timeout=self._connect_timeout)
        return self._conn

    def __repr__(self) -> str:
        return f"PostgresDedupe({self.name!r})"

    def _errors(self) -> Any:
        return _Errors(self)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock, self._errors():
            row = self._db.execute("SELECT at FROM dedupe_starts WHERE key = %s",
                                   (key,)).fetchone()
        return float(row[0]) if row is not None and abs(at - row[0]) < window else None

    def claim(self, key: str, at: float, window: float,
              claimant: str | None = None) -> float | None:
        with self._lock, self._errors(), self._db.transaction():
            inserted = self._db.execute(
                "INSERT INTO dedupe_starts (key, at, claimant) VALUES (%s, %s, %s) ON CONFLICT "
                "(key) DO NOTHING RETURNING at", (key, at, claimant)).fetchone()
            if inserted is not None:
                return None
            row = self._db.execute("SELECT at FROM dedupe_starts WHERE key = %s FOR UPDATE",
                                   (key,)).fetchone()
            if row is not None and abs(at - row[0]) < window:
                return float(row[0])
            # A new claim drops the run (and claimant) noted for the earlier one.
            self._db.execute("UPDATE dedupe_starts SET at = %s, run_id = NULL, claimant = %s "
                             "WHERE key = %s", (at, claimant, key))
            return None

    def claim_of(self, key: str) -> DedupeClaim | None:
        with self._lock, self._errors():
            row = self._db.execute("SELECT at, claimant, run_id FROM dedupe_starts WHERE "
                                   "key = %s", (key,)).fetchone()
        return None if row is None else DedupeClaim(float(row[0]), row[1], row[2])

    def started(self, key: str, at: float, run_id: str) -> None:
        with self._lock, self._errors():
            self._db.execute("UPDATE dedupe_starts SET run_id = %s WHERE key = %s AND at = %s",
                             (run_id, key, at))

    def run_of(self, key: str) -> str | None:
        with self._lock, self._errors():
            row = self._db.execute("SELECT run_id FROM dedupe_starts WHERE key = %s",
                                   (key,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def release(self, key: str, at: float) -> None:
        with self._lock, self._errors():
            self._db.execute("DELETE FROM dedupe_starts WHERE key = %s AND at = %s", (key, at))


class _Errors:
    """Database errors as JournalError naming the store, the password masked."""

    def __init__(self, store: PostgresDedupe):
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):  # the database went away: retry later
            raise JournalUnavailable(f"dedupe store {self.store.name}: "
                                     f"{self.store.target.message(exc)}") from None
        if isinstance(exc, psycopg.Error):
            raise JournalError(f"dedupe store {self.store.name}: "
                               f"{self.store.target.message(exc)}") from None
