"""Several `serve` replicas on one journal: intake on any, one poller at a time, one timer
firing per wait.

Intake needs nothing here: every replica stores and takes intake items through the journal's
database (leases, `FOR UPDATE SKIP LOCKED`). Two things must happen on one replica only:

- **The Incydr poller.** `ExclusivePoller` polls only while its replica holds the poller's
  lock: on PostgreSQL a session-level advisory lock on a connection of its own, which the
  server lets go of when that connection ends (the replica stopped, was killed with -9, or
  lost the network), so another replica takes it at its next try (every `retry` seconds, at
  most 5); on a SQLite journal an `flock` on a file beside it, which the kernel lets go of
  when the process dies. The holder asks its connection before every poll that it still
  holds the lock, and stops polling when it does not. Should two replicas ever poll at once
  (the holder's network lost for less than a poll), nothing is stored twice: events are
  known by id and the cursor is stored with its page.
- **The timer's resume of a wait.** Every replica's timer sees the same due waits. A run's
  lease lets one replica drive it at a time, but a timer that read a wait as due, then lost
  the race for the lease to another replica that settled it and let the lease go, would claim
  the run afterwards and resume it again. `RunGuard.hold(run_id)` (a try-lock per run, a
  PostgreSQL advisory lock) is taken before the wait is read again and held until the resume
  ends, so the wait is read and settled by one timer at a time: exactly one of them fires it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..journal import Journal, SQLiteJournal
from ..journal.postgres_schema import Target

log = logging.getLogger("crownguard.service")

# The first key of the two-key advisory locks (the second is a hash of the name): the
# journal's migration lock uses the one-key form, a space of its own.
POLLER_SPACE = 0x4347_0001
RUN_SPACE = 0x4347_0002
_KEY = "hashtext(current_schema() || ' ' || %s)"


class _Advisory:
    """Session-level advisory locks on one connection of its own. A lock lives as long as
    the connection: a reconnect (the old one broke) holds none."""

    def __init__(self, target: Target, *, connect_timeout: float = 10.0):
        self.target, self.connect_timeout = target, connect_timeout
        self._db: Any = None
        self._held: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def _conn(self) -> Any:
        import psycopg

        if self._db is None or self._db.closed or self._db.broken:
            if self._db is not None:
                self._db.close()
            self._held.clear()  # gone with the old connection
            self._db = None
            self._db = psycopg.connect(self.target.dsn, autocommit=True,
                                       connect_timeout=max(1, int(self.connect_timeout)),
                                       application_name="crownguard-replica-locks")
        return self._db

    def try_lock(self, space: int, name: str) -> bool:
        import psycopg

        with self._lock:
            if (space, name) in self._held:
                return True
            try:
                row = self._conn().execute(f"SELECT pg_try_advisory_lock(%s, {_KEY})",
                                           (space, name)).fetchone()
            except psycopg.Error as exc:
                log.warning("replica lock %s: %s", name, self.target.message(exc))
                return False
            if row and row[0]:
                self._held.add((space, name))
                return True
            return False

    def unlock(self, space: int, name: str) -> None:
        import psycopg

        with self._lock:
            if (space, name) not in self._held:
                return
            self._held.discard((space, name))
            try:
                self._conn().execute(f"SELECT pg_advisory_unlock(%s, {_KEY})", (space, name))
            except psycopg.Error:  # the connection is gone: so is the lock
                pass

    def holds(self, space: int, name: str) -> bool:
        """Whether the lock is still ours: its connection still answers (else it is gone)."""
        import psycopg

        with self._lock:
            db = self._db
            if (space, name) not in self._held or db is None or db.closed or db.broken:
                return False
            try:
                db.execute("SELECT 1")
            except psycopg.Error:
                self._held.clear()
                return False
            return True

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            if self._db is not None:
                self._db.close()
                self._db = None


# the poller -------------------------------------------------------------------------------------


class PollerLock(Protocol):
    def acquire(self) -> bool: ...
    def holds(self) -> bool: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


class _PgPollerLock:
    def __init__(self, target: Target, name: str):
        self._locks, self.name = _Advisory(target), f"poller {name}"

    def acquire(self) -> bool:
        return self._locks.try_lock(POLLER_SPACE, self.name)

    def holds(self) -> bool:
        return self._locks.holds(POLLER_SPACE, self.name)

    def release(self) -> None:
        self._locks.unlock(POLLER_SPACE, self.name)

    def close(self) -> None:
        self._locks.close()


class _FilePollerLock:
    """`flock` on a file beside a SQLite journal: one poller among processes of a machine."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def holds(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # the flock goes with it
            self._fd = None

    def close(self) -> None:
        self.release()


def poller_lock(journal: Journal, name: str) -> PollerLock:
    """The lock that makes `name`'s poller one per journal."""
    target = getattr(journal, "target", None)
    if isinstance(target, Target):
        return _PgPollerLock(target, name)
    if not isinstance(journal, SQLiteJournal):
        raise TypeError(f"no poller lock for a {type(journal).__name__}")
    path = Path(journal.path)
    return _FilePollerLock(path.with_name(f"{path.name}.poller-{name}.lock"))


class _WhileHeld:
    """The stop event the inner poller sees: set when the service stops or the lock is lost
    (asked between pages and between polls)."""

    def __init__(self, stop: threading.Event, lock: PollerLock):
        self.stop, self.lock = stop, lock
        self.lost = False

    def is_set(self) -> bool:
        if self.stop.is_set():
            return True
        if not self.lost and not self.lock.holds():
            self.lost = True
        return self.lost

    def wait(self, timeout: float | None = None) -> bool:
        return self.stop.wait(timeout) or self.is_set()


class ExclusivePoller:
    """A poller (`poller.IntakePoller`) that polls only while this replica holds its lock,
    and tries to take the lock every `retry` seconds while another one does."""

    def __init__(self, inner: Any, lock: PollerLock, *, retry: float | None = None):
        self.inner, self.lock = inner, lock
        self.retry = retry if retry is not None else min(max(float(inner.interval), 0.2), 5.0)
        self.holding = False

    @property
    def name(self) -> str:
        """The lock's name: a poller's own, or a group's (`poller.PollerGroup.name`), whose
        feeds one replica polls together."""
        return str(getattr(self.inner, "name", None) or self.inner.poller.name)

    def lag_seconds(self) -> dict[str, float]:
        """Each feed's lag: this replica's own while it polls, else read from the cursor the
        polling replica stores (every replica's metric says the same)."""
        if self.holding:
            lag = self.inner.lag_seconds()
            return dict(lag) if isinstance(lag, dict) else {self.name: float(lag)}
        return {str(feed.poller.name): _cursor_lag(feed)
                for feed in getattr(self.inner, "feeds", [self.inner])}

    def run(self, stop: threading.Event, wake: Callable[[], None]) -> None:
        told = False
        try:
            while not stop.is_set():
                if self.lock.acquire():
                    told = False
                    self.holding = True
                    log.info("poller %s: this replica polls (it holds the poller's lock)",
                             self.name)
                    until = _WhileHeld(stop, self.lock)
                    try:
                        self.inner.run(until, wake)
                    finally:
                        self.holding = False
                        self.lock.release()
                    if until.lost and not stop.is_set():
                        log.warning("poller %s: the poller's lock was lost (the database "
                                    "connection ended): polling stops here", self.name)
                elif not told:
                    told = True
                    log.info("poller %s: another replica polls; this one takes over if it "
                             "stops", self.name)
                stop.wait(self.retry)
        finally:
            self.lock.close()


def _cursor_lag(feed: Any) -> float:
    """A feed's lag read from the cursor its polling replica stores (0 before the first)."""
    try:
        saved = feed.store.cursor(feed.poller.name)
    except Exception:
        return 0.0
    if not saved:
        return 0.0
    at = datetime.fromisoformat(str(saved).replace("Z", "+00:00"))
    now = feed.clock() if callable(getattr(feed, "clock", None)) else datetime.now(UTC)
    return max((now - at).total_seconds(), 0.0)


def exclusive_poller(inner: Any, journal: Journal) -> ExclusivePoller:
    name = getattr(inner, "name", None) or inner.poller.name
    return ExclusivePoller(inner, poller_lock(journal, str(name)))


# the timer --------------------------------------------------------------------------------------


class RunGuard:
    """`hold(run_id)`: True inside when no other replica's timer is acting on the run."""

    def __init__(self, target: Target | None):
        self._locks = _Advisory(target) if target is not None else None

    @contextmanager
    def hold(self, run_id: str) -> Iterator[bool]:
        locks = self._locks
        if locks is None:  # one process on a SQLite file: its run locks are enough
            yield True
            return
        if not locks.try_lock(RUN_SPACE, run_id):
            yield False
            return
        try:
            yield True
        finally:
            locks.unlock(RUN_SPACE, run_id)

    def close(self) -> None:
        if self._locks is not None:
            self._locks.close()


def run_guard(journal: Journal) -> RunGuard:
    target = getattr(journal, "target", None)
    return RunGuard(target if isinstance(target, Target) else None)
