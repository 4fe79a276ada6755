"""What scoring needs to know about a person's past: their usual volume, the models they
have moved before, their earlier violations.

Scoring itself stays pure: it takes `HistoryFacts` (or a `History` that produces them) and
never writes. `InMemoryHistory` is the simple store the triage loop, the demo and tests use:
`facts()` before scoring an event, `record()` after it.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol

from .types import LEVEL_RANK

if TYPE_CHECKING:
    from ..detection.formats import Detection
    from ..events.model import ModelMovementEvent
    from .types import RiskScore


@dataclass(slots=True)
class HistoryFacts:
    """A person's past, as of just before the event being scored.

    baseline_daily_bytes: their usual model bytes per active day (None: not enough history);
    bytes_today: model bytes they already moved today; prior_model_accesses: earlier
    movements of this event's model by them (None: the model is not identified);
    prior_violations: earlier events that scored at the policy's violation level.
    """

    baseline_daily_bytes: float | None = None
    bytes_today: int = 0
    prior_model_accesses: int | None = None
    prior_violations: int = 0


class History(Protocol):
    def facts(self, event: ModelMovementEvent, detection: Detection) -> HistoryFacts: ...


class RecordingHistory(History, Protocol):
    """A history triage also records into (InMemoryHistory, SQLiteHistory)."""

    def record(self, event: ModelMovementEvent, detection: Detection,
               risk: RiskScore | None = None, *, violation_level: str = "high") -> None: ...


def model_key(event: ModelMovementEvent, detection: Detection) -> tuple[str, str] | None:
    """Which model an event moves: the registry match, else the source's model name."""
    if detection.match is not None:
        return detection.match.registry, detection.match.model
    if event.source.model:
        return event.source.registry or "", event.source.model
    return None


def _incident(event: ModelMovementEvent) -> str:
    """What one violation is: the origin's incident (the files of one alert are one), else
    the event."""
    return f"incident:{event.origin}:{event.incident}" if event.incident else \
        f"event:{event.origin}:{event.id}"


_NO_DAYS: dict[int, int] = {}


class InMemoryHistory:
    """Per-person model volume by day, models moved, violations; thread-safe, not durable."""

    def __init__(self, *, baseline_days: int = 30, min_active_days: int = 3):
        self.baseline_days = baseline_days
        self.min_active_days = min_active_days
        self._lock = threading.Lock()
        self._daily: dict[str, dict[int, int]] = defaultdict(dict)
        self._models: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        # person -> the incidents (an alert, else the event itself) that were violations
        self._violations: dict[str, dict[str, None]] = defaultdict(dict)
        # person -> (day, baseline, bytes, active days) of the window before that day: a
        # baseline only changes when an earlier day changes (record drops it then), and the
        # next day's window is this one slid, not summed again.
        self._baselines: dict[str, tuple[int, float | None, int, int]] = {}

    def facts(self, event: ModelMovementEvent, detection: Detection) -> HistoryFacts:
        person = event.actor.email
        today = event.time.toordinal()  # the day of the datetime, without a date object
        key = model_key(event, detection)
        with self._lock:
            daily = self._daily.get(person, _NO_DAYS)
            cached = self._baselines.get(person)
            if cached is not None and cached[0] == today:
                baseline = cached[1]
            else:
                baseline = self._baseline(person, daily, today, cached)
            accesses = None if key is None else self._models.get(person, {}).get(key, 0)
            violations = self._violations.get(person)
            prior = 0 if not violations else \
                len(violations) - (_incident(event) in violations)
            return HistoryFacts(baseline, daily.get(today, 0), accesses, prior)

    def _baseline(self, person: str, daily: dict[int, int], today: int,
                  cached: tuple[int, float | None, int, int] | None) -> float | None:
        """The mean of the active days in the window before `today`; from the cached window
        of an earlier day when it overlaps (the days between leave and enter it)."""
        days = self.baseline_days
        if cached is not None and 0 < today - cached[0] < days:
            before, _, total, active = cached
            for day in range(before - days, today - days):  # out of the window now
                if (size := daily.get(day, 0)) > 0:
                    total, active = total - size, active - 1
            for day in range(before, today):  # into it
                if (size := daily.get(day, 0)) > 0:
                    total, active = total + size, active + 1
        else:
            start = today - days
            window = [b for day, b in daily.items() if start <= day < today and b > 0]
            total, active = sum(window), len(window)
        baseline = total / active if active >= self.min_active_days else None
        self._baselines[person] = (today, baseline, total, active)
        return baseline

    def record(self, event: ModelMovementEvent, detection: Detection,
               risk: RiskScore | None = None, *, violation_level: str = "high") -> None:
        """Remember a scored event: its model bytes, its model, and a violation if it was one."""
        person = event.actor.email
        key = model_key(event, detection)
        with self._lock:
            if detection.is_model:
                daily = self._daily[person]
                day = event.time.toordinal()
                cached = self._baselines.get(person)
                if cached is not None and cached[0] != day:
                    del self._baselines[person]
                daily[day] = daily.get(day, 0) + (event.file.size or 0)
                if len(daily) > self.baseline_days * 2:
                    for old in sorted(daily)[:len(daily) - self.baseline_days * 2]:
                        del daily[old]
                    self._baselines.pop(person, None)  # a pruned day may lie in the window
            if key is not None:
                models = self._models[person]
                models[key] = models.get(key, 0) + 1
            if risk is not None and LEVEL_RANK[str(risk.level)] >= LEVEL_RANK[violation_level]:
                self._violations[person][_incident(event)] = None

    def seed_volume(self, person: str, daily_bytes: dict[date, int]) -> None:
        """Give a person a volume baseline (tests, the demo, an import from a data lake)."""
        with self._lock:
            for day, size in daily_bytes.items():
                self._daily[person.lower()][day.toordinal()] = size
            self._baselines.pop(person.lower(), None)

    def add_violations(self, person: str, count: int = 1) -> None:
        with self._lock:
            known = self._violations[person.lower()]
            start = len(known)
            for number in range(start, start + count):
                known[f"earlier:{number}"] = None
