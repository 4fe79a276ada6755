"""The intake table: events the service accepted and has yet to triage and respond to.

`IntakeStore` is what the service asks of it; `SQLiteIntakeStore` (here) keeps it in the
journal's SQLite file, `PostgresIntakeStore` (intake_pg) in the journal's PostgreSQL database.
The SQLite table lives in the journal's file (its own table, `service_intake`, beside the journal's)
so that an accepted event and the runs it starts share one store and one backup. `add`
commits (synchronous FULL) before the service answers 202: an accepted event survives a
kill -9. An event is known by (source, event id): delivered again it is accepted and not
stored twice. Items move pending -> started -> done (or failed); one started by a process that
is gone is pending again for the next (`take` reclaims it).

Beside it: a poller's cursor (`service_poll_cursors`), moved in the same transaction as the
events it stored, so a restart neither skips nor repeats; and the dead letters
(`service_dead_letters`), events a poller could not read, set aside (once each) for people;
and the verified chat interactions (`service_interactions`, a Slack click) stored before the
service answers 200 and recorded by the background, so a click survives a kill -9 too.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import orjson

from ..errors import JournalError
from ..journal.base import ProcessIdentity, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS service_intake (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, event_id TEXT NOT NULL,
    event TEXT NOT NULL, status TEXT NOT NULL, received_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, owner TEXT, runs TEXT, error TEXT,
    UNIQUE (source, event_id));
CREATE INDEX IF NOT EXISTS service_intake_by_status ON service_intake (status, id);
CREATE TABLE IF NOT EXISTS service_poll_cursors (
    name TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS service_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, key TEXT NOT NULL,
    event_id TEXT, reason TEXT NOT NULL, raw TEXT NOT NULL, at TEXT NOT NULL,
    UNIQUE (source, key));
CREATE TABLE IF NOT EXISTS service_interactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT NOT NULL, key TEXT NOT NULL,
    interaction TEXT NOT NULL, status TEXT NOT NULL, received_at TEXT NOT NULL,
    owner TEXT, finished_at TEXT, error TEXT, UNIQUE (receiver, key));
"""


class IntakeStatus(StrEnum):
    PENDING = "pending"
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class IntakeItem:
    id: int
    source: str
    event_id: str
    event: dict[str, Any]


@dataclass(frozen=True)
class DeadLetter:
    """An event set aside: `key` is its id, or a digest of it when it has none."""

    key: str
    event_id: str | None
    reason: str
    raw: Any


@dataclass(frozen=True)
class Accepted:
    event_id: str
    duplicate: bool


_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(event: dict[str, Any]) -> str:
    """An event as stored: orjson (a tenth of the json module's time), the json module for
    what orjson refuses (integers past 64 bits, keys that are not strings)."""
    try:
        return orjson.dumps(event, default=str, option=_ORJSON).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(event, default=str)


def _owner() -> str:
    me = ProcessIdentity.current()
    return json.dumps([me.host, me.pid, me.boot_id, me.started])


def _gone(owner: str | None) -> bool:
    if not owner:
        return True
    try:
        host, pid, boot_id, started = json.loads(owner)
        return ProcessIdentity(host, int(pid), boot_id, started).alive() is False
    except (ValueError, TypeError):
        return True


@dataclass
class _Batch:
    """One request's items, waiting for a commit; `future` is answered once they are."""
    source: str
    events: list[tuple[str, str]]
    accepted: list[Accepted] = field(default_factory=list)
    poll_cursor: tuple[str, str] | None = None  # a poller's page: its new cursor, committed
    dead: list[DeadLetter] = field(default_factory=list)  # with its dead letters
    future: Future[list[Accepted]] = field(default_factory=Future)


class IntakeStore(Protocol):
    """What the service asks of its intake store: `SQLiteIntakeStore` (the journal's file) or
    `PostgresIntakeStore` (intake_pg: the journal's database), picked by the journal's kind."""

    def add(self, source: str, events: list[tuple[str, dict[str, Any]]], *,
            poll_cursor: tuple[str, str] | None = None,
            dead: list[DeadLetter] | None = None) -> list[Accepted]: ...

    def submit(self, source: str, events: list[tuple[str, dict[str, Any]]], *,
               poll_cursor: tuple[str, str] | None = None,
               dead: list[DeadLetter] | None = None) -> Future[list[Accepted]]: ...

    def take(self, limit: int) -> list[IntakeItem]: ...

    def finish(self, item_id: int, runs: list[str], error: str | None = None) -> None: ...

    def release(self, item_ids: list[int]) -> None: ...

    def add_interaction(self, receiver: str, key: str, interaction: dict[str, Any]
                        ) -> bool: ...

    def take_interaction(self) -> tuple[int, str, dict[str, Any]] | None: ...

    def finish_interaction(self, item_id: int, error: str | None = None) -> None: ...

    def counts(self) -> dict[str, int]: ...

    def cursor(self, name: str) -> str | None: ...

    def dead_letters(self, limit: int = 100, after: int = 0) -> list[dict[str, Any]]: ...

    def dead_letter_counts(self) -> dict[str, int]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class GroupCommit:
    """One writer thread that commits whatever requests are waiting in one transaction
    (`submit`); a store gives `_commit_all(batches)`, which answers every batch's future."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    def _stop_writer(self) -> None:
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)
            writer.join()

    def add(self, source: str, events: list[tuple[str, dict[str, Any]]], *,
            poll_cursor: tuple[str, str] | None = None,
            dead: list[DeadLetter] | None = None) -> list[Accepted]:
        """Store every (event id, normalised event) of one request in one transaction;
        returns once it is durable. An event already stored is a duplicate, not stored again.

        A poller also gives its new `poll_cursor` (name, value) and the `dead` letters of the
        page: all of it commits together, or none."""
        return self.submit(source, events, poll_cursor=poll_cursor, dead=dead).result()

    def submit(self, source: str, events: list[tuple[str, dict[str, Any]]], *,
               poll_cursor: tuple[str, str] | None = None,
               dead: list[DeadLetter] | None = None) -> Future[list[Accepted]]:
        """`add` without waiting: the future gives the accepted items once they are durable
        (or raises JournalError). An asyncio caller awaits it with asyncio.wrap_future, so
        no worker thread waits for the disk on its behalf.

        Group commit: the writer thread takes every request queued while it was committing
        and commits them all in one transaction (one fsync); each future is answered only
        once its own items are committed."""
        batch = _Batch(source, [(event_id, _dumps(event)) for event_id, event in events],
                       poll_cursor=poll_cursor, dead=list(dead or []))
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name="crownguard-intake-writer")
                self._writer.start()
            self._queue.put(batch)
        return batch.future

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batches = [first]
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
            self._commit_all(batches)
            if stop:
                return

    def _commit_all(self, batches: list[_Batch]) -> None:
        raise NotImplementedError


class SQLiteIntakeStore(GroupCommit):
    """The intake table on the journal's file; one connection, shared under a lock (writes
    are short and the table small). Accepted events are written by one writer thread that
    commits whatever requests are waiting in one transaction (group commit, `submit`)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL",
                 busy_timeout: float = 30.0):
        super().__init__()
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            with self._write() as db:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the intake table in {self.path}: {exc}") from None

    def close(self) -> None:
        self._stop_writer()
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _commit_all(self, batches: list[_Batch]) -> None:
        with self._lock:
            self._commit(batches)

    def _commit(self, batches: list[_Batch]) -> None:
        """Called with the lock held: one transaction for every queued request."""
        now = utc_now()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for batch in batches:
                    batch.accepted = []
                    for letter in batch.dead:
                        self._db.execute(
                            "INSERT OR IGNORE INTO service_dead_letters (source, key, "
                            "event_id, reason, raw, at) VALUES (?, ?, ?, ?, ?, ?)",
                            (batch.source, letter.key, letter.event_id, letter.reason,
                             json.dumps(letter.raw, default=str), now))
                    if batch.poll_cursor is not None:
                        self._db.execute(
                            "INSERT INTO service_poll_cursors (name, cursor, updated_at) "
                            "VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                            "cursor = excluded.cursor, updated_at = excluded.updated_at",
                            (batch.poll_cursor[0], batch.poll_cursor[1], now))
                    for event_id, text in batch.events:
                        cursor = self._db.execute(
                            "INSERT OR IGNORE INTO service_intake (source, event_id, event, "
                            "status, received_at) VALUES (?, ?, ?, ?, ?)",
                            (batch.source, event_id, text, str(IntakeStatus.PENDING), now))
                        batch.accepted.append(Accepted(event_id, cursor.rowcount == 0))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            error = JournalError(f"intake table in {self.path}: {exc}")
            for batch in batches:
                batch.future.set_exception(error)
            return
        except BaseException as exc:  # not a database error: still answer every waiter
            for batch in batches:
                batch.future.set_exception(JournalError(f"intake table in {self.path}: "
                                                        f"{type(exc).__name__}: {exc}"))
            return
        for batch in batches:
            batch.future.set_result(batch.accepted)

    def take(self, limit: int) -> list[IntakeItem]:
        """Up to `limit` pending items (oldest first), marked started by this process; items
        a process that is gone had started count as pending."""
        with self._write() as db:
            for row_id, owner in db.execute(
                    "SELECT id, owner FROM service_intake WHERE status = ?",
                    (str(IntakeStatus.STARTED),)).fetchall():
                if owner != _owner() and _gone(owner):
                    db.execute("UPDATE service_intake SET status = ? WHERE id = ?",
                               (str(IntakeStatus.PENDING), row_id))
            rows = db.execute("SELECT id, source, event_id, event FROM service_intake WHERE "
                              "status = ? ORDER BY id LIMIT ?",
                              (str(IntakeStatus.PENDING), int(limit))).fetchall()
            db.executemany("UPDATE service_intake SET status = ?, started_at = ?, owner = ? "
                           "WHERE id = ?", [(str(IntakeStatus.STARTED), utc_now(), _owner(),
                                             row[0]) for row in rows])
        return [IntakeItem(row[0], row[1], row[2], json.loads(row[3])) for row in rows]

    def finish(self, item_id: int, runs: list[str], error: str | None = None) -> None:
        """Mark an item done (with the runs it started), or failed with why."""
        status = IntakeStatus.FAILED if error else IntakeStatus.DONE
        with self._write() as db:
            db.execute("UPDATE service_intake SET status = ?, finished_at = ?, runs = ?, "
                       "error = ? WHERE id = ?",
                       (str(status), utc_now(), json.dumps(runs), error, item_id))

    def release(self, item_ids: list[int]) -> None:
        """Hand started items back as pending (a drain that ran out of time)."""
        with self._write() as db:
            db.executemany("UPDATE service_intake SET status = ?, owner = NULL WHERE id = ? "
                           "AND status = ?", [(str(IntakeStatus.PENDING), i,
                                               str(IntakeStatus.STARTED)) for i in item_ids])

    # chat interactions ----------------------------------------------------------------------

    def add_interaction(self, receiver: str, key: str, interaction: dict[str, Any]) -> bool:
        """Store a verified interaction (committed before the answer); False when the same
        one (`key`: its body's digest, as a chat tool delivers it again) is already stored."""
        try:
            with self._write() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO service_interactions (receiver, key, interaction, "
                    "status, received_at) VALUES (?, ?, ?, ?, ?)",
                    (receiver, key, json.dumps(interaction, default=str),
                     str(IntakeStatus.PENDING), utc_now()))
        except sqlite3.Error as exc:
            raise JournalError(f"interactions table in {self.path}: {exc}") from None
        return cursor.rowcount == 1

    def take_interaction(self) -> tuple[int, str, dict[str, Any]] | None:
        """The oldest pending interaction (id, receiver, interaction), marked started; one a
        process that is gone had started counts as pending."""
        with self._write() as db:
            for row_id, owner in db.execute(
                    "SELECT id, owner FROM service_interactions WHERE status = ?",
                    (str(IntakeStatus.STARTED),)).fetchall():
                if owner != _owner() and _gone(owner):
                    db.execute("UPDATE service_interactions SET status = ? WHERE id = ?",
                               (str(IntakeStatus.PENDING), row_id))
            row = db.execute("SELECT id, receiver, interaction FROM service_interactions WHERE "
                             "status = ? ORDER BY id LIMIT 1",
                             (str(IntakeStatus.PENDING),)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE service_interactions SET status = ?, owner = ? WHERE id = ?",
                       (str(IntakeStatus.STARTED), _owner(), row[0]))
        return int(row[0]), str(row[1]), json.loads(row[2])

    def finish_interaction(self, item_id: int, error: str | None = None) -> None:
        status = IntakeStatus.FAILED if error else IntakeStatus.DONE
        with self._write() as db:
            db.execute("UPDATE service_interactions SET status = ?, finished_at = ?, error = ? "
                       "WHERE id = ?", (str(status), utc_now(), error, item_id))

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, count(*) FROM service_intake GROUP BY "
                                    "status").fetchall()
        found = {str(s): 0 for s in IntakeStatus}
        found.update({row[0]: row[1] for row in rows})
        return found

    def cursor(self, name: str) -> str | None:
        """A poller's cursor, None before its first stored page."""
        with self._lock:
            row = self._db.execute("SELECT cursor FROM service_poll_cursors WHERE name = ?",
                                   (name,)).fetchone()
        return None if row is None else str(row[0])

    def dead_letters(self, limit: int = 100, after: int = 0) -> list[dict[str, Any]]:
        """The events set aside, oldest first, after row `after`."""
        with self._lock:
            rows = self._db.execute("SELECT id, source, event_id, reason, raw, at FROM "
                                    "service_dead_letters WHERE id > ? ORDER BY id LIMIT ?",
                                    (int(after), int(limit))).fetchall()
        return [{"id": r[0], "source": r[1], "event_id": r[2], "reason": r[3],
                 "event": json.loads(r[4]), "at": r[5]} for r in rows]

    def dead_letter_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT source, count(*) FROM service_dead_letters GROUP "
                                    "BY source").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def ping(self) -> None:
        """Raise when the table cannot be read (for /readyz)."""
        with self._lock:
            self._db.execute("SELECT 1 FROM service_intake LIMIT 1").fetchall()
