"""The intake table in the PostgreSQL journal's database, for any number of `serve` processes.

The same tables as SQLite's (`service_intake`, `service_poll_cursors`, `service_dead_letters`,
`service_interactions`), made by the journal's migration 3 (4 adds an item's `outcome`), and
the same rules: `add` returns (and the API answers 202) only once the request's items are
committed, by one writer thread that commits every request waiting in one transaction (group
commit, one WAL flush).

Several processes take from one table: `take` and `take_interaction` lock the rows they take
with `FOR UPDATE SKIP LOCKED`, so no two processes take the same item. A taken item carries
its owner and a lease that a heartbeat thread renews; an item is pending again once its lease
has lapsed (its process died or lost the database), or at once when its owner is a process on
this machine that is gone (a kill -9 then a restart does not wait out the lease).

The DSN's password is a secret: the store names itself by user, host, port and database, and
masks the password in every error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from ..errors import JournalError, JournalUnavailable
from ..journal.base import ProcessIdentity, utc_now
from ..journal.postgres import UNREACHABLE_WAIT
from ..journal.postgres_schema import Target, schema_version
from .intake import (
    Accepted,
    DeadLetter,
    GroupCommit,
    IntakeItem,
    IntakeStatus,
    _Batch,
    _gone,
    _owner,
)

log = logging.getLogger("crownguard.service")
DEFAULT_LEASE_SECONDS = 30.0
NEEDS_SCHEMA = 4  # the journal's migrations that made these tables (3) and `outcome` (4)
_TABLES = ("service_intake", "service_interactions")
_PENDING, _STARTED = str(IntakeStatus.PENDING), str(IntakeStatus.STARTED)


class PostgresIntakeStore(GroupCommit):
    """The intake in a PostgreSQL database (`postgresql://user@host:port/db`); the tables must
    exist (the journal opened first migrates them)."""

    def __init__(self, dsn: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 pool_size: int = 4, connect_timeout: float = 10.0):
        super().__init__()
        self.target = Target.parse(dsn)
        self.name = self.target.name
        self.lease_seconds = lease_seconds
        self.connect_timeout = connect_timeout
        self._me = _owner()
        self._host = ProcessIdentity.current().host
        self._db: Any = None  # the writer thread's connection (opened here: errors show now)
        self._unreachable = False  # the last operation found the database gone
        with self._errors("cannot open the intake table"):
            self._db = self._connect()
            if schema_version(self._db) < NEEDS_SCHEMA:
                self._db.close()
                raise JournalError(f"intake table in {self.name}: the journal's schema is "
                                   f"older than {NEEDS_SCHEMA}: run `crownguard journal "
                                   "migrate`")
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(
                self.target.dsn, min_size=1, max_size=max(1, pool_size), open=True,
                timeout=max(connect_timeout, 30.0), name="crownguard-intake",
                kwargs={"autocommit": True,
                        "connect_timeout": max(1, int(connect_timeout))})
        self._stopping = threading.Event()
        self._heartbeat = threading.Thread(target=self._renew_loop, daemon=True,
                                           name="crownguard-intake-lease")
        self._heartbeat.start()

    def __repr__(self) -> str:
        return f"PostgresIntakeStore({self.name!r})"

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.target.dsn, autocommit=True,
                               connect_timeout=max(1, int(self.connect_timeout)))

    @contextmanager
    def _errors(self, what: str = "intake table") -> Iterator[None]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except psycopg.OperationalError as exc:  # the database went away: retry later
            self._unreachable = True
            raise JournalUnavailable(f"{what} in {self.name}: {self.target.message(exc)}"
                                     ) from None
        except psycopg.Error as exc:  # names tables and constraints; the password is masked
            raise JournalError(f"{what} in {self.name}: {self.target.message(exc)}") from None
        except PoolTimeout:
            self._unreachable = True
            raise JournalUnavailable(f"{what} in {self.name}: no connection to the database "
                                     "now") from None
        self._unreachable = False

    @contextmanager
    def _conn(self, what: str = "intake table") -> Iterator[Any]:
        # Once the database was found gone, the pool's full timeout is not waited out.
        wait = UNREACHABLE_WAIT if self._unreachable else None
        with self._errors(what), self._pool.connection(timeout=wait) as conn:
            yield conn

    def close(self) -> None:
        self._stop_writer()
        self._stopping.set()
        self._heartbeat.join(timeout=5)
        if self._db is not None:
            self._db.close()
        self._pool.close()

    # the writer ------------------------------------------------------------------------------

    def _commit_all(self, batches: list[_Batch]) -> None:
        self._commit(batches)

    def _writer_db(self) -> Any:
        """The writer's connection, opened again after the database went away."""
        if self._db is None or self._db.closed or self._db.broken:
            if self._db is not None:
                self._db.close()
            self._db = None
            self._db = self._connect()
        return self._db

    def _commit(self, batches: list[_Batch]) -> None:
        """One transaction for every queued request; every future is answered."""
        import psycopg

        now = utc_now()
        try:
            db = self._writer_db()
            # Events alone are one statement, atomic by itself: one round trip, not three
            # (BEGIN, INSERT, COMMIT); a poller's cursor and dead letters need a transaction.
            alone = not any(batch.dead or batch.poll_cursor is not None for batch in batches)
            with nullcontext() if alone else db.transaction():
                for batch in batches:
                    for letter in batch.dead:
                        db.execute("INSERT INTO service_dead_letters (source, key, event_id, "
                                   "reason, raw, at) VALUES (%s, %s, %s, %s, %s, %s) ON "
                                   "CONFLICT (source, key) DO NOTHING",
                                   (batch.source, letter.key, letter.event_id, letter.reason,
                                    json.dumps(letter.raw, default=str), now))
                    if batch.poll_cursor is not None:
                        db.execute("INSERT INTO service_poll_cursors (name, cursor, updated_at)"
                                   " VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                                   "cursor = excluded.cursor, updated_at = excluded.updated_at",
                                   (*batch.poll_cursor, now))
                items = [(batch.source, event_id, text) for batch in batches
                         for event_id, text in batch.events]
                stored: set[tuple[str, str]] = set()
                if items:  # one statement for every event of every request
                    sources, ids, texts = (list(column) for column in zip(*items, strict=True))
                    stored = {(row[0], row[1]) for row in db.execute(
                        "INSERT INTO service_intake (source, event_id, event, status, "
                        "received_at) SELECT s, e, t, %s, %s FROM unnest(%s::text[], "
                        "%s::text[], %s::text[]) AS u(s, e, t) ON CONFLICT (source, event_id) "
                        "DO NOTHING RETURNING source, event_id",
                        (_PENDING, now, sources, ids, texts)).fetchall()}
            for batch in batches:  # the first of an id in this commit is new, the rest not
                batch.accepted = []
                for event_id, _ in batch.events:
                    new = (batch.source, event_id) in stored
                    stored.discard((batch.source, event_id))
                    batch.accepted.append(Accepted(event_id, not new))
        except psycopg.Error as exc:
            error = JournalError(f"intake table in {self.name}: {self.target.message(exc)}")
            for batch in batches:
                batch.future.set_exception(error)
            return
        except BaseException as exc:  # not a database error: still answer every waiter
            for batch in batches:
                batch.future.set_exception(JournalError(
                    f"intake table in {self.name}: {type(exc).__name__}: "
                    f"{self.target.redactor.redact(str(exc))}"))
            return
        for batch in batches:
            batch.future.set_result(batch.accepted)

    # taking ------------------------------------------------------------------------------------

    def _reclaim(self, conn: Any, table: str) -> None:
        """Items whose lease lapsed, or whose owner on this machine is gone, are pending again
        (compare-and-set on the owner: two reclaimers free an item once)."""
        conn.execute(f"UPDATE {table} SET status = %s, owner = NULL, owner_host = NULL, "  # noqa: S608
                     "lease_expires = NULL WHERE status = %s AND lease_expires < %s",
                     (_PENDING, _STARTED, time.time()))
        mine = conn.execute(f"SELECT id, owner FROM {table} WHERE status = %s AND "  # noqa: S608
                            "owner_host = %s AND owner <> %s",
                            (_STARTED, self._host, self._me)).fetchall()
        for row_id, owner in mine:
            if _gone(owner):
                conn.execute(f"UPDATE {table} SET status = %s, owner = NULL, "  # noqa: S608
                             "owner_host = NULL, lease_expires = NULL WHERE id = %s AND "
                             "owner = %s", (_PENDING, row_id, owner))

    def _take(self, table: str, columns: str, limit: int) -> list[Any]:
        """Up to `limit` pending rows of `table`, oldest first, marked started by this process;
        rows another process is taking at the same moment are skipped, not waited for."""
        with self._conn_transaction() as conn:
            self._reclaim(conn, table)
            rows = conn.execute(
                f"UPDATE {table} SET status = %s, owner = %s, owner_host = %s, "  # noqa: S608
                f"lease_expires = %s{', started_at = %s' if table == 'service_intake' else ''}"
                f" WHERE id IN (SELECT id FROM {table} WHERE status = %s ORDER BY id LIMIT %s "
                f"FOR UPDATE SKIP LOCKED) RETURNING {columns}",
                (_STARTED, self._me, self._host, time.time() + self.lease_seconds,
                 *([utc_now()] if table == "service_intake" else []), _PENDING, int(limit))
            ).fetchall()
        return sorted(rows, key=lambda row: row[0])

    @contextmanager
    def _conn_transaction(self) -> Iterator[Any]:
        with self._conn() as conn, conn.transaction():
            yield conn

    def take(self, limit: int) -> list[IntakeItem]:
        """Up to `limit` pending items (oldest first), marked started by this process."""
        rows = self._take("service_intake", "id, source, event_id, event, received_at", limit)
        return [IntakeItem(row[0], row[1], row[2], json.loads(row[3]), row[4]) for row in rows]

    def finish(self, item_id: int, runs: list[str], error: str | None = None, *,
               outcome: str | None = None) -> None:
        status = IntakeStatus.FAILED if error else IntakeStatus.DONE
        with self._conn() as conn:
            conn.execute("UPDATE service_intake SET status = %s, finished_at = %s, runs = %s, "
                         "error = %s, outcome = %s, lease_expires = NULL WHERE id = %s",
                         (str(status), utc_now(), json.dumps(runs), error, outcome, item_id))

    def release(self, item_ids: list[int]) -> None:
        """Hand started items back as pending (a drain that ran out of time)."""
        with self._conn() as conn:
            conn.execute("UPDATE service_intake SET status = %s, owner = NULL, owner_host = "
                         "NULL, lease_expires = NULL WHERE id = ANY(%s) AND status = %s",
                         (_PENDING, list(item_ids), _STARTED))

    def _renew_loop(self) -> None:
        """Renew the leases of the items this process has taken, a third of a lease apart."""
        while not self._stopping.wait(self.lease_seconds / 3):
            try:
                with self._conn() as conn:
                    for table in _TABLES:
                        conn.execute(f"UPDATE {table} SET lease_expires = %s WHERE "  # noqa: S608
                                     "status = %s AND owner = %s",
                                     (time.time() + self.lease_seconds, _STARTED, self._me))
            except JournalError as exc:
                log.warning("cannot renew the intake leases: %s", exc)
            except Exception as exc:  # the pool closing under it: stop quietly
                if not self._stopping.is_set():
                    log.warning("cannot renew the intake leases: %s", type(exc).__name__)

    # chat interactions ----------------------------------------------------------------------

    def add_interaction(self, receiver: str, key: str, interaction: dict[str, Any]) -> bool:
        with self._conn("interactions table") as conn:
            row = conn.execute(
                "INSERT INTO service_interactions (receiver, key, interaction, status, "
                "received_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (receiver, key) DO "
                "NOTHING RETURNING id", (receiver, key, json.dumps(interaction, default=str),
                                         _PENDING, utc_now())).fetchone()
        return row is not None

    def take_interaction(self) -> tuple[int, str, dict[str, Any]] | None:
        rows = self._take("service_interactions", "id, receiver, interaction", 1)
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1]), json.loads(rows[0][2])

    def finish_interaction(self, item_id: int, error: str | None = None) -> None:
        status = IntakeStatus.FAILED if error else IntakeStatus.DONE
        with self._conn("interactions table") as conn:
            conn.execute("UPDATE service_interactions SET status = %s, finished_at = %s, "
                         "error = %s, lease_expires = NULL WHERE id = %s",
                         (str(status), utc_now(), error, item_id))

    # reading -----------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._conn() as conn:
            return list(conn.execute(sql, args).fetchall())

    def counts(self) -> dict[str, int]:
        found = {str(s): 0 for s in IntakeStatus}
        found.update({str(r[0]): int(r[1]) for r in self._rows(
            "SELECT status, count(*) FROM service_intake GROUP BY status")})
        return found

    def cursor(self, name: str) -> str | None:
        rows = self._rows("SELECT cursor FROM service_poll_cursors WHERE name = %s", (name,))
        return None if not rows else str(rows[0][0])

    def dead_letters(self, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        rows = self._rows("SELECT id, source, event_id, reason, raw, at FROM "
                          "service_dead_letters WHERE id > %s ORDER BY id LIMIT %s",
                          (int(after), int(limit)))
        return [{"id": r[0], "source": r[1], "event_id": r[2], "reason": r[3],
                 "event": json.loads(r[4]), "at": r[5]} for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        return {str(r[0]): int(r[1]) for r in self._rows(
            "SELECT source, count(*) FROM service_dead_letters GROUP BY source")}

    def ping(self) -> None:
        self._rows("SELECT 1 FROM service_intake LIMIT 1")


__all__ = ["DeadLetter", "PostgresIntakeStore"]
