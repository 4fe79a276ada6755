"""The runner: how a run starts, resumes and is cancelled (its inputs, its journal entry, its
first event), over one `Execution` (execution.py) of the coordinating loop per drive."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .conductor import Conductor
from .config import Config
from .dryrun import plan_answers
from .errors import ConfigError, RunEnded
from .execution import Execution
from .journal import Journal
from .kinds import CANCELLABLE, EventType, RunKind, RunStatus
from .outbox import EventSink
from .plugins import PluginHost
from .spec import Playbook
from .steps import pending_backoffs

DEFAULT_MAX_CONCURRENCY = 64


class Runner:
    """Runs playbooks with the plugins of `host` and the connections of `config`."""

    def __init__(self, host: PluginHost, config: Config | None = None, *,
                 max_concurrency: int | None = None, journal: EventSink | None = None,
                 dry_run: bool = False, seed: int | None = None,
                 on_event: EventSink | None = None):
        """`journal` receives every event before the runner acts on it: a `Journal` (durable;
        the run is created in it) or any callable. `on_event` sees each event after that (a
        live timeline)."""
        self.host = host
        self.config = config or Config()
        self.max_concurrency = max_concurrency or self.config.max_concurrency \
            or DEFAULT_MAX_CONCURRENCY
        if not 1 <= self.max_concurrency <= 1024:
            raise ConfigError(f"max_concurrency must be between 1 and 1024, not "
                              f"{self.max_concurrency}")
        self.journal = journal
        self.on_event = on_event
        self.dry_run = dry_run
        self.retry_jitter = random.Random(seed)  # the retries' backoff jitter, nothing else

    # public -----------------------------------------------------------------------------------

    def run(self, playbook: Playbook, event: dict[str, Any] | None = None, *,
            run_id: str | None = None, risk: dict[str, Any] | None = None,
            variables: dict[str, Any] | None = None, kind: RunKind = RunKind.RUN,
            parent_run_id: str | None = None,
            details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a playbook to its end (or to a wait) and return the run record. `details` (who
        started it, of which run it is an undo or a rerun) go into its run_started event."""
        run_id = run_id or uuid.uuid4().hex
        inputs = {
            "event": event or {},
            "vars": {**playbook.vars, **self.config.vars, **(variables or {})},
            "risk": risk or {},
            "run": {"id": run_id, "playbook": playbook.name, "dry_run": self.dry_run,
                    # Where a playbook's own files (nudge templates...) are looked up.
                    "playbook_dir": str(Path(playbook.source).resolve().parent)
                    if playbook.source and not playbook.source.startswith("<") else None},
        }
        conductor = Conductor(playbook, inputs)
        redacted = self.config.redactor.redact_value(inputs)
        if isinstance(self.journal, Journal):
            self.journal.create_run(
                run_id, playbook.name, playbook.text, inputs=redacted,
                playbook_path=playbook.source or None, kind=kind,
                parent_run_id=parent_run_id, config_path=self.config.source or None)
        execution = Execution(self, playbook, conductor, run_id)
        execution.emit({**self.config.redactor.redact_value(details or {}),
                        "type": EventType.RUN_STARTED, "playbook": playbook.name,
                        "inputs": redacted})
        record = execution.drive()
        if self.dry_run and record["status"] == RunStatus.WAITING:
            record = plan_answers(record, execution.events, execution.after_answer,
                                  self.on_event)
        return record

    def resume(self, playbook: Playbook, run_id: str, inputs: dict[str, Any],
               events: list[dict[str, Any]],
               answers: dict[str, dict[str, Any]] | None = None,
               now: datetime | None = None) -> dict[str, Any]:
        """Continue a run from its journal: replay the events, then drive it on.

        Steps that were in flight start again (same idempotency keys). A waiting step with an
        answer in `answers` (`{step: {decision: approve|reject, by, comment, at}}`) finishes
        with it: approve succeeds with the answer as output, reject fails the step. A waiting
        step whose wait expired without an answer fails.
        """
        conductor = Conductor.replay(playbook, inputs, events)
        if conductor.cancelled:
            raise RunEnded(f"run {run_id} was cancelled: it cannot be resumed")
        requeued = conductor.requeue_in_flight()
        execution = Execution(self, playbook, conductor, run_id)
        execution.emit({"type": EventType.RUN_RESUMED, "requeued": requeued,
                        "answered": sorted(answers or {})})
        execution.not_before = pending_backoffs(events, now or datetime.now(UTC))
        execution.settle_waits(answers or {}, now or datetime.now(UTC))
        return execution.drive()

    def cancel(self, playbook: Playbook, run_id: str, inputs: dict[str, Any],
               events: list[dict[str, Any]], *, reason: str,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
        """Cancel a run that has not ended (it waits for an answer, or has steps left to run)
        and return its record, now `cancelled`.

        One run_cancelled event (with `reason`, the steps it cancels and `details`) moves every
        step that is not final to cancelled. No step of the run starts again: the conductor
        decides nothing for a cancelled run, a journal refuses its further events (RunEnded)
        and `resume` refuses it. Raises RunEnded when it was cancelled already.
        """
        conductor = Conductor.replay(playbook, inputs, events)
        if conductor.cancelled:
            raise RunEnded(f"run {run_id} was cancelled already")
        open_steps = [sid for sid, state in conductor.steps.items()
                      if state.status in CANCELLABLE]
        execution = Execution(self, playbook, conductor, run_id)
        execution.emit({**self.config.redactor.redact_value(details or {}),
                        "type": EventType.RUN_CANCELLED,
                        "reason": self.config.redactor.redact(reason),
                        "cancelled_steps": open_steps})
        for step_id in open_steps:
            execution._notify_finished(step_id)
        execution.outbox.flush()
        record = self.config.redactor.redact_value(conductor.record(run_id))
        self.host.notify("crownguard_run_finished", record=record)
        return dict(record)
