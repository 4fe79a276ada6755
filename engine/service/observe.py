"""Metrics from the runs the service performs: an event sink beside the journal.

It sees every event of the runs intake starts (and of the runs the timer and answers resume)
and counts runs ended by playbook and status, step durations by action, and vendor errors by
vendor and kind (each failed attempt of a vendor action: `RateLimited`, `ServerError`,
`AuthError`...). It never raises: a metric must not fail a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..kinds import EventType
from ..spec import Playbook
from .metrics import ServiceMetrics

log = logging.getLogger("crownguard.service")
# Started steps remembered at most (a run that never finishes must not grow this forever).
MAX_OPEN = 10_000


def _at(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


class RunMetrics:
    """An `on_event` sink; `playbook(name)` finds a playbook by name, `name_of(run_id)` the
    playbook of a run first seen resumed (by the timer, an answer), not started here."""

    def __init__(self, metrics: ServiceMetrics, playbook: Callable[[str], Playbook | None],
                 name_of: Callable[[str], str | None] = lambda run_id: None):
        self.metrics, self.playbook, self.name_of = metrics, playbook, name_of
        self._lock = threading.Lock()
        self._runs: dict[str, Playbook | None] = {}
        # (run, step) -> when it (its first item, for a for_each) was first started
        self._started: dict[tuple[str, str], datetime] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        try:
            self._observe(event)
        except Exception as exc:  # pragma: no cover - a metrics bug must not fail a run
            log.debug("metrics: cannot count %s: %s", event.get("type"), exc)

    def _action(self, run_id: str, step_id: Any) -> str:
        playbook = self._runs.get(run_id)
        step = playbook.by_id.get(str(step_id)) if playbook is not None else None
        return step.action if step is not None else "unknown"

    def _observe(self, event: dict[str, Any]) -> None:
        kind, run_id = event.get("type"), str(event.get("run_id"))
        with self._lock:
            if run_id not in self._runs:
                name = (str(event.get("playbook")) if kind == EventType.RUN_STARTED
                        else self.name_of(run_id))
                self._runs[run_id] = self.playbook(name) if name else None
            if kind == EventType.STEP_STARTED:
                at = _at(event.get("at"))
                if at is not None and len(self._started) < MAX_OPEN:
                    self._started.setdefault((run_id, str(event.get("step"))), at)
            elif kind in (EventType.STEP_SUCCEEDED, EventType.STEP_FAILED):
                step = str(event.get("step"))
                began, ended = self._started.pop((run_id, step), None), _at(event.get("at"))
                if began is not None and ended is not None:
                    self.metrics.step_seconds.labels(action=self._action(run_id, step)).observe(
                        max(0.0, (ended - began).total_seconds()))
            elif kind == EventType.ATTEMPT_FAILED:
                action = self._action(run_id, event.get("step"))
                vendor = action.split(".", 1)[0]
                if vendor != "core" or action == "core.http_request":
                    self.metrics.vendor_errors.labels(
                        vendor=vendor, kind=str(event.get("error_type") or "unknown")).inc()
            elif kind == EventType.RUN_FINISHED:
                playbook = self._runs.get(run_id)
                name = playbook.name if playbook is not None else "unknown"
                self.metrics.runs_ended.labels(playbook=name,
                                               status=str(event.get("status"))).inc()
                # run_finished comes once, at the end (a waiting run has none yet).
                self._runs.pop(run_id, None)
                for key in [k for k in self._started if k[0] == run_id]:  # cancelled steps
                    del self._started[key]
                if len(self._runs) > MAX_OPEN:  # waiting runs resumed by another process
                    self._runs.pop(next(iter(self._runs)))
