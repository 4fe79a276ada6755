"""Risk history in the PostgreSQL journal's database (the twin of `store.SQLiteHistory`), so
every process and machine on one journal (`serve` replicas, `crownguard respond`,
`crownguard triage`) sees the same past.

The same four tables (`history_daily`, `history_models`, `history_violations`,
`history_events`), made by the journal's migration 2, the same hashed person, the same facts:
a person's past is read from the database in one round trip before each event is scored (no
cross-process cache to go stale: there is no `data_version` to watch), and `record()` is one
transaction of upserts; an event another process recorded first is not recorded twice.
Read only (`triage`), it reads each person's past once and records later events of the same
command in memory only, as SQLiteHistory does.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import TYPE_CHECKING, Any

from ...errors import JournalError, JournalUnavailable
from ...journal.postgres_schema import Target, migrate, schema_version
from .history import HistoryFacts, InMemoryHistory, _incident, model_key
from .store import _event_key, _hashed
from .types import LEVEL_RANK

if TYPE_CHECKING:
    from ..detection.formats import Detection
    from ..events.model import ModelMovementEvent
    from .types import RiskScore

NEEDS_SCHEMA = 2
_PERSON = (
    "SELECT 'd' AS k, day::text AS a, NULL AS b, bytes AS n, 0::bigint AS o FROM "
    "history_daily WHERE person = %(p)s UNION ALL "
    "SELECT 'm', registry, model, count, 0 FROM history_models WHERE person = %(p)s UNION ALL "
    "SELECT 'v', incident, NULL, 0, id FROM history_violations WHERE person = %(p)s "
    "ORDER BY 1, 5")


class PostgresHistory:
    """Per-person model volume by day, models moved, violations, in a PostgreSQL database
    shared by processes and machines; `writable=False` never writes to it."""

    def __init__(self, dsn: str, *, writable: bool = True, baseline_days: int = 30,
                 min_active_days: int = 3, connect_timeout: float = 10.0):
        import psycopg

        self.target = Target.parse(dsn)
        self.name = self.target.name
        self.writable = writable
        self.baseline_days = baseline_days
        self.min_active_days = min_active_days
        self._lock = threading.Lock()
        self._connect_timeout = max(1, int(connect_timeout))
        self._closed = False
        try:
            self._conn = psycopg.connect(dsn, autocommit=True,
                                         connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            raise JournalError(f"risk history in {self.name}: {self.target.message(exc)}"
                               ) from None
        try:
            with self._errors():
                if writable:
                    migrate(self._db, self.name)
                self._has_tables = schema_version(self._db) >= NEEDS_SCHEMA
        except BaseException:
            self._conn.close()
            raise
        self._cache = self._fresh()
        self._loaded: set[str] = set()  # read only: the persons read once
        self._recorded_count = 0

    def __repr__(self) -> str:
        return f"PostgresHistory({self.name!r})"

    def _fresh(self) -> InMemoryHistory:
        return InMemoryHistory(baseline_days=self.baseline_days,
                               min_active_days=self.min_active_days)

    def _errors(self) -> Any:
        return _Errors(self)

    @property
    def _db(self) -> Any:
        """The connection (lock held, inside `_errors`), a new one once the old is broken (the
        database restarted)."""
        if not self._closed and (self._conn.closed or self._conn.broken):
            import psycopg

            self._conn.close()
            self._conn = psycopg.connect(self.target.dsn, autocommit=True,
                                         connect_timeout=self._connect_timeout)
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    def _current(self, person: str) -> None:
        """The cache holds `person` as the database has them now (lock held); read only,
        as the database had them when first asked."""
        if not self.writable and person in self._loaded:
            return
        if len(self._loaded) >= 50_000:
            self._cache, self._loaded = self._fresh(), set()
        self._loaded.add(person)
        cache = self._cache
        for table in (cache._daily, cache._models, cache._violations):
            table.pop(person, None)
        if not self._has_tables:
            return
        with self._errors():
            rows = self._db.execute(_PERSON, {"p": _hashed(person)}).fetchall()
        daily = {int(a): int(n) for k, a, _, n, _ in rows if k == "d"}
        models = {(str(a), str(b)): int(n) for k, a, b, n, _ in rows if k == "m"}
        violations = dict.fromkeys(str(a) for k, a, _, _, _ in rows if k == "v")
        if daily:
            cache._daily[person] = daily
        if models:
            cache._models[person] = models
        if violations:
            cache._violations[person] = violations

    def _recorded(self, event: ModelMovementEvent) -> tuple[int, int | None, str, str] | None:
        if not self._has_tables:
            return None
        with self._errors():
            row = self._db.execute("SELECT day, bytes, registry, model FROM history_events "
                                   "WHERE event = %s", (_event_key(event),)).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3])

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

    def record(self, event: ModelMovementEvent, detection: Detection,
               risk: RiskScore | None = None, *, violation_level: str = "high") -> None:
        """Remember a scored event (one transaction), as InMemoryHistory.record does."""
        person = event.actor.email
        with self._lock:
            if not self.writable:
                self._current(person)
                if self._recorded(event) is None:
                    self._cache.record(event, detection, risk,
                                       violation_level=violation_level)
                return
            violation = risk is not None and \
                LEVEL_RANK[str(risk.level)] >= LEVEL_RANK[violation_level]
            with self._errors():
                self._write(event, detection, person, model_key(event, detection), violation)

    def _write(self, event: ModelMovementEvent, detection: Detection, person: str,
               key: tuple[str, str] | None, violation: bool) -> None:
        day, who = event.time.date().toordinal(), _hashed(person)
        db = self._db
        with db.transaction():
            if db.execute("INSERT INTO history_events (event, day, bytes, registry, model) "
                          "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event) DO NOTHING "
                          "RETURNING event",
                          (_event_key(event), day,
                           (event.file.size or 0) if detection.is_model else None,
                           *(key or (None, None)))).fetchone() is None:
                return  # recorded already, by this process or another
            self._recorded_count += 1
            if self._recorded_count % 256 == 0:  # events older than the days kept go
                db.execute("DELETE FROM history_events WHERE day < %s",
                           (day - self.baseline_days * 2,))
            if detection.is_model:
                db.execute("INSERT INTO history_daily (person, day, bytes) VALUES (%s, %s, %s) "
                           "ON CONFLICT (person, day) DO UPDATE SET bytes = "
                           "history_daily.bytes + excluded.bytes", (who, day,
                                                                    event.file.size or 0))
                # Only the most recent 2 x baseline_days days are kept, as in memory.
                db.execute("DELETE FROM history_daily WHERE person = %(p)s AND day NOT IN "
                           "(SELECT day FROM history_daily WHERE person = %(p)s ORDER BY day "
                           "DESC LIMIT %(n)s)", {"p": who, "n": self.baseline_days * 2})
            if key is not None:
                db.execute("INSERT INTO history_models (person, registry, model, count) "
                           "VALUES (%s, %s, %s, 1) ON CONFLICT (person, registry, model) DO "
                           "UPDATE SET count = history_models.count + 1", (who, *key))
            if violation:
                db.execute("INSERT INTO history_violations (person, incident) VALUES (%s, %s) "
                           "ON CONFLICT DO NOTHING", (who, _incident(event)))

    def seed_volume(self, person: str, daily_bytes: dict[date, int]) -> None:
        """Give a person a volume baseline (tests, the demo, an import from a data lake)."""
        person = person.lower()
        with self._lock:
            self._current(person)
            self._cache.seed_volume(person, daily_bytes)
            if self.writable:
                with self._errors(), self._db.transaction():
                    for day, size in daily_bytes.items():
                        self._db.execute(
                            "INSERT INTO history_daily (person, day, bytes) VALUES (%s, %s, %s) "
                            "ON CONFLICT (person, day) DO UPDATE SET bytes = excluded.bytes",
                            (_hashed(person), day.toordinal(), size))

    def add_violations(self, person: str, count: int = 1) -> None:
        person = person.lower()
        with self._lock:
            self._current(person)
            start = len(self._cache._violations.get(person, ()))
            self._cache.add_violations(person, count)
            if self.writable:
                with self._errors(), self._db.transaction():
                    for n in range(start, start + count):
                        self._db.execute("INSERT INTO history_violations (person, incident) "
                                         "VALUES (%s, %s) ON CONFLICT DO NOTHING",
                                         (_hashed(person), f"earlier:{n}"))


class _Errors:
    """Database errors as JournalError naming the database, the password masked."""

    def __init__(self, history: PostgresHistory):
        self.history = history

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):  # the database went away: retry later
            raise JournalUnavailable(f"risk history in {self.history.name}: "
                                     f"{self.history.target.message(exc)}") from None
        if isinstance(exc, psycopg.Error):
            raise JournalError(f"risk history in {self.history.name}: "
                               f"{self.history.target.message(exc)}") from None
