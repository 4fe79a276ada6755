"""Risk history in the dedupe store's SQLite file, so every process on one journal (the
service, `crownguard respond` run again and again, `crownguard triage`) sees the same past:
a volume spike or a repeat violation is noticed whichever process saw the earlier events.

Three tables beside the dedupe claims: `history_daily(person, day, bytes)` (model bytes by
day, the most recent `2 x baseline_days` days kept per person), `history_models(person,
registry, model, count)` and `history_violations(person, incident)`; `person` is the
SHA-256 of the e-mail address, as the dedupe keys are hashed, so the file names nobody in
clear (it is 0600, as the journal is).

`SQLiteHistory` answers from an `InMemoryHistory` it fills one person at a time from the
file, so its facts are those InMemoryHistory would give for the same events (a property
test feeds both the same sequences). Writable, each `record()` is one short transaction of
upserts and the cache is dropped whenever another process has committed to the file
(SQLite's `data_version`); read only (`triage`, which must not change the store), it reads
each person's past once and records later events of the same command in memory only.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from .history import HistoryFacts, InMemoryHistory, _incident, model_key
from .types import LEVEL_RANK

if TYPE_CHECKING:
    from ..detection.formats import Detection
    from ..events.model import ModelMovementEvent
    from .types import RiskScore

_TABLES = (
    "CREATE TABLE IF NOT EXISTS history_daily (person TEXT NOT NULL, day INTEGER NOT NULL, "
    "bytes INTEGER NOT NULL, PRIMARY KEY (person, day))",
    "CREATE TABLE IF NOT EXISTS history_models (person TEXT NOT NULL, registry TEXT NOT NULL, "
    "model TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (person, registry, model))",
    "CREATE TABLE IF NOT EXISTS history_violations (person TEXT NOT NULL, "
    "incident TEXT NOT NULL, PRIMARY KEY (person, incident))",
    # The events recorded, and what each added: an event is recorded once, whichever
    # process sees it again, and is not its own history when it is scored again.
    "CREATE TABLE IF NOT EXISTS history_events (event TEXT PRIMARY KEY, day INTEGER NOT NULL, "
    "bytes INTEGER, registry TEXT, model TEXT)",
    "CREATE INDEX IF NOT EXISTS history_events_day ON history_events (day)",
)


class SQLiteHistory:
    """Per-person model volume by day, models moved, violations, in a SQLite file shared by
    processes and threads; `writable=False` never writes to it."""

    # Persons kept in the in-process cache before it is started afresh (a long-running
    # service meets many people; the file keeps them all).
    MAX_CACHED = 50_000

    def __init__(self, path: str | Path, *, writable: bool = True, baseline_days: int = 30,
                 min_active_days: int = 3):
        self.path = Path(path)
        self.writable = writable
        self.baseline_days = baseline_days
        self.min_active_days = min_active_days
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        try:
            if writable:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                for table in _TABLES:
                    self._db.execute(table)
            self._has_tables = writable or self._db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                "('history_daily', 'history_models', 'history_violations', 'history_events')"
            ).fetchone()[0] == 4
            self._data_version = self._version()
        except BaseException:
            self._db.close()
            raise
        self._fresh_cache()
        self._recorded_count = 0
        self._last_seen: tuple[tuple[str, str], tuple[int, int | None, str, str] | None] | \
            None = None

    def _fresh_cache(self) -> None:
        self._cache = InMemoryHistory(baseline_days=self.baseline_days,
                                      min_active_days=self.min_active_days)
        self._loaded: set[str] = set()

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _current(self, person: str) -> None:
        """The cache, up to date for `person` (lock held): dropped when another process
        committed (writable only), then the person read from the file if not yet there."""
        if self.writable:
            version = self._version()
            if version != self._data_version:
                self._data_version = version
                self._fresh_cache()
        if person in self._loaded:
            return
        if len(self._loaded) >= self.MAX_CACHED:
            self._fresh_cache()
        self._loaded.add(person)
        if not self._has_tables:
            return
        cache, who = self._cache, _hashed(person)
        daily = {day: size for day, size in self._db.execute(
            "SELECT day, bytes FROM history_daily WHERE person = ?", (who,))}
        if daily:
            cache._daily[person] = daily
        models = {(registry, model): count for registry, model, count in self._db.execute(
            "SELECT registry, model, count FROM history_models WHERE person = ?", (who,))}
        if models:
            cache._models[person] = models
        violations = dict.fromkeys(row[0] for row in self._db.execute(
            "SELECT incident FROM history_violations WHERE person = ? ORDER BY rowid",
            (who,)))
        if violations:
            cache._violations[person] = violations

    def facts(self, event: ModelMovementEvent, detection: Detection) -> HistoryFacts:
        with self._lock:
            self._current(event.actor.email)
            facts = self._cache.facts(event, detection)
            earlier = self._recorded(event)
        if earlier is not None:  # scored again (a rerun, another process): not its own past
            day, size, registry, model = earlier
            if size is not None and day == event.time.date().toordinal():
                facts.bytes_today = max(0, facts.bytes_today - size)
            if facts.prior_model_accesses and model is not None and \
                    (registry, model) == model_key(event, detection):
                facts.prior_model_accesses -= 1
        return facts

    def _recorded(self, event: ModelMovementEvent) -> tuple[int, int | None, str, str] | None:
        """What the file holds of `event` having been recorded (lock held)."""
        if not self._has_tables:
            return None
        seen = (event.origin, event.id)
        if self._last_seen is not None and self._last_seen[0] == seen:
            return self._last_seen[1]  # facts() then record() of one event: asked once
        row = self._db.execute("SELECT day, bytes, registry, model FROM history_events "
                               "WHERE event = ?", (_event_key(event),)).fetchone()
        found = None if row is None else (row[0], row[1], row[2], row[3])
        if not self.writable:  # a file this process does not write: the answer holds
            self._last_seen = (seen, found)
        return found

    def record(self, event: ModelMovementEvent, detection: Detection,
               risk: RiskScore | None = None, *, violation_level: str = "high") -> None:
        """Remember a scored event (one transaction), as InMemoryHistory.record does."""
        person = event.actor.email
        with self._lock:
            self._current(person)
            if not self.writable:
                if self._recorded(event) is None:  # else the file has it: not twice
                    self._cache.record(event, detection, risk,
                                       violation_level=violation_level)
                return
            key = model_key(event, detection)
            violation = risk is not None and \
                LEVEL_RANK[str(risk.level)] >= LEVEL_RANK[violation_level]
            if self._write(event, detection, person, key, violation):
                self._cache.record(event, detection, risk, violation_level=violation_level)

    def _write(self, event: ModelMovementEvent, detection: Detection, person: str,
               key: tuple[str, str] | None, violation: bool) -> bool:
        """Record the event in one transaction; False when the file already had it."""
        day = event.time.date().toordinal()
        with self._transaction():
            if self._db.execute(
                    "INSERT OR IGNORE INTO history_events (event, day, bytes, registry, model) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (_event_key(event), day,
                     (event.file.size or 0) if detection.is_model else None,
                     *(key or (None, None)))).rowcount == 0:
                return False
            self._recorded_count += 1
            if self._recorded_count % 256 == 0:  # events older than the days kept go
                self._db.execute("DELETE FROM history_events WHERE day < ?",
                                 (day - self.baseline_days * 2,))
            if detection.is_model:
                self._add_bytes(person, event.time.date().toordinal(),
                                event.file.size or 0)
            if key is not None:
                self._db.execute(
                    "INSERT INTO history_models (person, registry, model, count) "
                    "VALUES (?, ?, ?, 1) ON CONFLICT (person, registry, model) "
                    "DO UPDATE SET count = count + 1", (_hashed(person), *key))
            if violation:
                self._db.execute("INSERT OR IGNORE INTO history_violations "
                                 "(person, incident) VALUES (?, ?)",
                                 (_hashed(person), _incident(event)))
        return True

    def _add_bytes(self, person: str, day: int, size: int) -> None:
        who = _hashed(person)
        self._db.execute("INSERT INTO history_daily (person, day, bytes) VALUES (?, ?, ?) "
                         "ON CONFLICT (person, day) DO UPDATE SET bytes = bytes + excluded.bytes",
                         (who, day, size))
        # Only the most recent 2 x baseline_days days are kept, as in memory (the cache holds
        # the file's days for the person, as of this process's last look).
        if len(self._cache._daily.get(person, ())) < self.baseline_days * 2:
            return
        self._db.execute("DELETE FROM history_daily WHERE person = ? AND day NOT IN "
                         "(SELECT day FROM history_daily WHERE person = ? "
                         "ORDER BY day DESC LIMIT ?)", (who, who, self.baseline_days * 2))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def seed_volume(self, person: str, daily_bytes: dict[date, int]) -> None:
        """Give a person a volume baseline (tests, the demo, an import from a data lake)."""
        person = person.lower()
        with self._lock:
            self._current(person)
            self._cache.seed_volume(person, daily_bytes)
            if self.writable:
                with self._transaction():
                    self._db.executemany(
                        "INSERT OR REPLACE INTO history_daily (person, day, bytes) "
                        "VALUES (?, ?, ?)",
                        [(_hashed(person), day.toordinal(), size)
                         for day, size in daily_bytes.items()])

    def add_violations(self, person: str, count: int = 1) -> None:
        person = person.lower()
        with self._lock:
            self._current(person)
            start = len(self._cache._violations.get(person, ()))
            self._cache.add_violations(person, count)
            if self.writable:
                with self._transaction():
                    self._db.executemany(
                        "INSERT OR IGNORE INTO history_violations (person, incident) "
                        "VALUES (?, ?)",
                        [(_hashed(person), f"earlier:{n}") for n in range(start, start + count)])


def _event_key(event: ModelMovementEvent) -> str:
    return hashlib.sha256(f"{event.origin}\x1f{event.id}".encode()).hexdigest()


def _hashed(person: str) -> str:
    """The person as the file keeps them: hashed, as the dedupe keys are (no e-mail address
    in clear)."""
    return hashlib.sha256(person.encode()).hexdigest()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
