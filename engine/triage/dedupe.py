"""Dedupe: when a playbook last started for a file and person, so it does not start twice.

One event never starts the same playbook twice for the same file (SHA-256, else path, else
name) and person within the dedupe window, measured in *event* time: a re-delivered event, or a
second event about the same copy a minute later, is recognised however late it arrives. The
state lives behind `DedupeStore`: in memory for one process, or a small SQLite file shared by
processes (`routing.dedupe_store` in the policy, else `<journal>.dedupe.db` beside the run
journal). The file is created 0600, as the journal is: its keys are hashes, but its times say
when each person's files were acted on.

A claim names the run it started (`started`), so a duplicate can say which run to rerun; a
claim whose run could not start is `release`d, so the same event can start it again.

A claim may also name its claimant (the service names the intake item, as a digest): a process
killed after its claim and before its run was in the journal left a claim that is no other
event's, and when the same item is processed again (`claim_of` says the claim is its own) the
router starts the run rather than taking the item for a duplicate of itself.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from ..journal.dedupe_claims import DedupeClaim as Claim
from .events.model import ModelMovementEvent


def claimant_digest(claimant: str) -> str:
    """How a store keeps a claimant: hashed, as the keys are."""
    return hashlib.sha256(f"claimant\x1f{claimant}".encode()).hexdigest()


class DedupeStore(Protocol):
    """When a playbook last started for a key; claims are atomic."""

    def last_start(self, key: str, at: float, window: float) -> float | None:
        """The start within `window` of event time `at`, if any (read only)."""

    def claim(self, key: str, at: float, window: float,
              claimant: str | None = None) -> float | None:
        """Record a start at `at` (by `claimant`, a digest) unless one lies within `window`;
        return that one if so."""

    def claim_of(self, key: str) -> Claim | None:
        """The latest claim of `key`, if any."""

    def started(self, key: str, at: float, run_id: str) -> None:
        """Note the run that the claim made at `at` started."""

    def run_of(self, key: str) -> str | None:
        """The run the latest claim of `key` started, if one was noted."""

    def release(self, key: str, at: float) -> None:
        """Forget the claim made at `at` (its run could not start); a later claim stays."""


class InMemoryDedupe:
    """Dedupe state for one process (the CLI with no store configured, the demo, tests)."""

    def __init__(self) -> None:
        self._starts: dict[str, float] = {}
        self._runs: dict[str, str] = {}
        self._claimants: dict[str, str] = {}
        self._lock = threading.Lock()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._starts.get(key)
        return before if before is not None and abs(at - before) < window else None

    def claim(self, key: str, at: float, window: float,
              claimant: str | None = None) -> float | None:
        with self._lock:
            before = self._starts.get(key)
            if before is not None and abs(at - before) < window:
                return before
            self._starts[key] = at
            self._runs.pop(key, None)
            self._claimants.pop(key, None)
            if claimant is not None:
                self._claimants[key] = claimant
            return None

    def claim_of(self, key: str) -> Claim | None:
        with self._lock:
            at = self._starts.get(key)
            return None if at is None else \
                Claim(at, self._claimants.get(key), self._runs.get(key))

    def started(self, key: str, at: float, run_id: str) -> None:
        with self._lock:
            if self._starts.get(key) == at:
                self._runs[key] = run_id

    def run_of(self, key: str) -> str | None:
        with self._lock:
            return self._runs.get(key)

    def release(self, key: str, at: float) -> None:
        with self._lock:
            if self._starts.get(key) == at:
                del self._starts[key]
                self._runs.pop(key, None)
                self._claimants.pop(key, None)


class ScratchDedupe:
    """Claims kept for one command over a store it only reads.

    `triage` claims through it, so the second of two identical events in one input shows as
    the duplicate `respond` would make of it, and nothing is written to the real store."""

    def __init__(self, store: DedupeStore):
        self.store = store
        self._starts: dict[str, float] = {}
        self._runs: dict[str, str] = {}
        self._lock = threading.Lock()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            return self._last_start(key, at, window)

    def claim(self, key: str, at: float, window: float,
              claimant: str | None = None) -> float | None:
        with self._lock:
            before = self._last_start(key, at, window)
            if before is None:
                self._starts[key] = at
                self._runs.pop(key, None)  # as a real store's new claim drops the run noted
            return before

    def claim_of(self, key: str) -> Claim | None:
        with self._lock:  # a claim made here has no claimant: triage names none
            if key in self._starts:
                return Claim(self._starts[key], None, self._runs.get(key))
        return self.store.claim_of(key)

    def started(self, key: str, at: float, run_id: str) -> None:
        with self._lock:
            if self._starts.get(key) == at:
                self._runs[key] = run_id

    def run_of(self, key: str) -> str | None:
        with self._lock:
            if key in self._starts:
                return self._runs.get(key)
        return self.store.run_of(key)

    def release(self, key: str, at: float) -> None:
        with self._lock:
            if self._starts.get(key) == at:
                del self._starts[key]
                self._runs.pop(key, None)

    def _last_start(self, key: str, at: float, window: float) -> float | None:
        # A claim made here replaces the real store's start, as it would in the real store.
        before = self._starts.get(key)
        if before is None:
            return self.store.last_start(key, at, window)
        return before if abs(at - before) < window else None

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


class SQLiteDedupe:
    """Dedupe state in a small SQLite file, safe across threads and processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # 0600 before SQLite opens it; its -wal and -shm files take the same mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS starts (key TEXT PRIMARY KEY, "
                         "at REAL NOT NULL, run_id TEXT, claimant TEXT)")
        self._notes_runs = self._has_column("run_id")
        self._notes_claimants = self._has_column("claimant")

    def _has_column(self, name: str) -> bool:
        """A store from before runs (or claimants) were noted has no such column until one is
        noted in it (reading it, as triage does, changes nothing)."""
        return any(row[1] == name for row in self._db.execute("PRAGMA table_info(starts)"))

    def _add_column(self, name: str) -> None:
        try:
            self._db.execute(f"ALTER TABLE starts ADD COLUMN {name} TEXT")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # not another process first
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT at FROM starts WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None and abs(at - row[0]) < window else None

    def claim(self, key: str, at: float, window: float,
              claimant: str | None = None) -> float | None:
        with self._lock:
            if claimant is not None and not self._notes_claimants:
                self._add_column("claimant")
                self._notes_claimants = True
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT at FROM starts WHERE key = ?", (key,)).fetchone()
                if row is not None and abs(at - row[0]) < window:
                    self._db.execute("ROLLBACK")
                    return float(row[0])
                # REPLACE drops the run (and claimant) noted for an earlier claim of the key.
                if claimant is None:
                    self._db.execute("INSERT OR REPLACE INTO starts (key, at) VALUES (?, ?)",
                                     (key, at))
                else:
                    self._db.execute("INSERT OR REPLACE INTO starts (key, at, claimant) "
                                     "VALUES (?, ?, ?)", (key, at, claimant))
                self._db.execute("COMMIT")
                return None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def started(self, key: str, at: float, run_id: str) -> None:
        with self._lock:
            if not self._notes_runs:
                self._add_column("run_id")
                self._notes_runs = True
            self._db.execute("UPDATE starts SET run_id = ? WHERE key = ? AND at = ?",
                             (run_id, key, at))

    def run_of(self, key: str) -> str | None:
        with self._lock:
            if not self._notes_runs:
                self._notes_runs = self._has_column("run_id")
                if not self._notes_runs:
                    return None
            row = self._db.execute("SELECT run_id FROM starts WHERE key = ?", (key,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def claim_of(self, key: str) -> Claim | None:
        with self._lock:
            # Another process may have added a column since.
            self._notes_runs = self._notes_runs or self._has_column("run_id")
            self._notes_claimants = self._notes_claimants or self._has_column("claimant")
            run_id = "run_id" if self._notes_runs else "NULL"  # constants, never input
            claimant = "claimant" if self._notes_claimants else "NULL"
            row = self._db.execute(f"SELECT at, {run_id}, {claimant} FROM starts "  # noqa: S608
                                   "WHERE key = ?", (key,)).fetchone()
        return None if row is None else Claim(float(row[0]), row[2], row[1])

    def release(self, key: str, at: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM starts WHERE key = ? AND at = ?", (key, at))


LEGACY_DEDUPE_FILE = "dedupe.sqlite"


def dedupe_path_beside(journal: Path) -> Path:
    """The dedupe store of a run journal: `<journal>.dedupe.db` beside it, so two journals in
    one folder keep apart; a `dedupe.sqlite` there from before, and no store of the new name,
    is still read and written."""
    path = journal.with_name(f"{journal.name}.dedupe.db")
    legacy = journal.parent / LEGACY_DEDUPE_FILE
    return legacy if not path.exists() and legacy.exists() else path


def dedupe_key(playbook: str, event: dict[str, Any] | ModelMovementEvent) -> str:
    """playbook + person + file (SHA-256, else path, else name), hashed: the store keeps no
    e-mail address or path in clear. `event` is the event's data or the event itself."""
    sha256: Any
    path: Any
    name: Any
    email: Any
    if isinstance(event, ModelMovementEvent):
        sha256, path, name = event.file.sha256, event.file.path, event.file.name
        email = event.actor.email
    else:
        file = event.get("file") or {}
        sha256, path, name = file.get("sha256"), file.get("path"), file.get("name")
        email = (event.get("actor") or {}).get("email")
    ident = f"sha256:{sha256}" if sha256 else f"path:{path}" if path else f"name:{name}"
    person = str(email or "").lower()
    return hashlib.sha256(f"{playbook}\x1f{person}\x1f{ident}".encode()).hexdigest()
