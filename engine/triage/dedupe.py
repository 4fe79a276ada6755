"""Dedupe: when a playbook last started for a file and person, so it does not start twice.

One event never starts the same playbook twice for the same file (SHA-256, else path, else
name) and person within the dedupe window, measured in *event* time: a re-delivered event, or a
second event about the same copy a minute later, is recognised however late it arrives. The
state lives behind `DedupeStore`: in memory for one process, or a small SQLite file shared by
processes (`routing.dedupe_store` in the policy, else `<journal>.dedupe.db` beside the run
journal). The file is created 0600, as the journal is: its keys are hashes, but its times say
when each person's files were acted on.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Protocol

from .events.model import ModelMovementEvent


class DedupeStore(Protocol):
    """When a playbook last started for a key; claims are atomic."""

    def last_start(self, key: str, at: float, window: float) -> float | None:
        """The start within `window` of event time `at`, if any (read only)."""

    def claim(self, key: str, at: float, window: float) -> float | None:
        """Record a start at `at` unless one lies within `window`; return that one if so."""


class InMemoryDedupe:
    """Dedupe state for one process (the CLI with no store configured, the demo, tests)."""

    def __init__(self) -> None:
        self._starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._starts.get(key)
        return before if before is not None and abs(at - before) < window else None

    def claim(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._starts.get(key)
            if before is not None and abs(at - before) < window:
                return before
            self._starts[key] = at
            return None


class ScratchDedupe:
    """Claims kept for one command over a store it only reads.

    `triage` claims through it, so the second of two identical events in one input shows as
    the duplicate `respond` would make of it, and nothing is written to the real store."""

    def __init__(self, store: DedupeStore):
        self.store = store
        self._starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            return self._last_start(key, at, window)

    def claim(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._last_start(key, at, window)
            if before is None:
                self._starts[key] = at
            return before

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
                         "at REAL NOT NULL)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT at FROM starts WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None and abs(at - row[0]) < window else None

    def claim(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT at FROM starts WHERE key = ?", (key,)).fetchone()
                if row is not None and abs(at - row[0]) < window:
                    self._db.execute("ROLLBACK")
                    return float(row[0])
                self._db.execute("INSERT OR REPLACE INTO starts (key, at) VALUES (?, ?)",
                                 (key, at))
                self._db.execute("COMMIT")
                return None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


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
