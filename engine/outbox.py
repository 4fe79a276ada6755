"""The runner's events on their way out: journaled together, then shown.

The runner applies each event to the conductor at once and hands it here. What is here is
written to the journal in one transaction (`Journal.append_many`) when `flush()` is called,
and only then do the observers (`on_event`, the plugins' hooks) see it, in the order it
happened. The runner flushes before anything acts on the world: before an action that is not
inline is called (an inline action is pure: it has nothing to undo or repeat), before the loop
waits for a call in flight or a timer, and when a drive ends. So one scheduling round (a
step's result and the start of the steps it made ready) costs one transaction, and a crash
loses only events nothing had acted on yet; the steps they recorded run again on resume with
the same idempotency keys, as a step in flight at a crash always does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .journal import Journal

EventSink = Callable[[dict[str, Any]], None]
# A long chain of inline steps still commits now and then: what a crash can take back stays
# small, and so does one transaction.
MAX_PENDING = 256
# The text of the last second event_time() formatted: (second, "YYYY-MM-DDTHH:MM:SS").
_second: tuple[int, str] = (-1, "")


def event_time(ns: int | None = None) -> str:
    """An event's `at`, as `journal.base.utc_now()` spells it ("...T13:56:29.123456Z", UTC,
    microseconds rounded down), for the time `ns` (ns since the epoch, default now). The text
    up to the seconds is formatted once a second: the runner stamps every event."""
    global _second
    second, rest = divmod(time.time_ns() if ns is None else ns, 1_000_000_000)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{rest // 1000:06d}Z"


class Outbox:
    """Pending events of one run's drive and the notifications that follow them."""

    __slots__ = ("_events", "_later", "journal", "on_event")

    def __init__(self, journal: EventSink | None, on_event: EventSink | None):
        self.journal = journal
        self.on_event = on_event
        self._events: list[dict[str, Any]] = []
        # In order: an event to show (a dict) or a hook to call (a callable).
        self._later: list[dict[str, Any] | Callable[[], None]] = []

    def add(self, event: dict[str, Any], journaled: bool = True) -> None:
        """`event` as stored; `journaled=False` (a dry run's hypothetical path) only shows it."""
        if journaled and self.journal is not None:
            self._events.append(event)
        if self.on_event is not None:
            self._later.append(event)
        if len(self._events) >= MAX_PENDING:
            self.flush()

    def later(self, hook: Callable[[], None]) -> None:
        """Call `hook` once the events before it are journaled."""
        self._later.append(hook)

    def keeps(self, journaled: bool = True) -> bool:
        """Whether anything reads an event as stored (a journal, or `on_event`): when nothing
        does, the runner need not build that form (large values by digest)."""
        return (journaled and self.journal is not None) or self.on_event is not None

    @property
    def pending(self) -> bool:
        return bool(self._events or self._later)

    def flush(self) -> None:
        """Journal what is pending (one transaction), then show it. A journal error (the run
        was cancelled, another process holds it) drops what was pending and is raised."""
        events, later = self._events, self._later
        self._events, self._later = [], []
        if events:
            journal = self.journal
            if isinstance(journal, Journal):
                journal.append_many(events)
            elif journal is not None:
                for event in events:
                    journal(event)
        for item in later:
            if isinstance(item, dict):
                if self.on_event is not None:
                    self.on_event(item)
            else:
                item()
