"""Intake with a broker: each chosen run is created in the journal and its id enqueued.

`QueuedRespond` is what the service's intake calls instead of `triage.respond.respond` when
it has a broker: the same triage, the same readiness check (nothing claimed when a step would
lack its connection), the same claim; then, for each playbook routing chose, the run is
created (`run_created` and `run_started` in the journal, exactly what `Runner.run` writes
first) with a lease that has already lapsed, so that any worker may claim it, and its id is
sent to the broker. When the broker is down the run stays in the journal and the sweeper sends
it later: intake does not wait for Redis, and nothing taken in is lost.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ...conductor import Conductor
from ...config import Config
from ...journal import Journal, SQLiteJournal, utc_now
from ...kinds import EventType, RunKind
from ...plugins import PluginHost
from ...spec import Playbook
from ...triage import Triage
from ...triage.events import ModelMovementEvent
from ...triage.respond import Response, not_ready_error, unready_runs
from .queue import BrokerUnavailable, RunQueue

log = logging.getLogger("crownguard.worker")
EventSink = Callable[[dict[str, Any]], None]


def run_inputs(playbook: Playbook, config: Config, run_id: str, event: dict[str, Any],
               risk: dict[str, Any]) -> dict[str, Any]:
    """A new run's inputs, as `Runner.run` builds them (tests/workers check they agree)."""
    return {
        "event": event or {},
        "vars": {**playbook.vars, **config.vars},
        "risk": risk or {},
        "run": {"id": run_id, "playbook": playbook.name, "dry_run": False,
                "playbook_dir": str(Path(playbook.source).resolve().parent)
                if playbook.source and not playbook.source.startswith("<") else None},
    }


def handoff_journal(journal: Journal) -> Journal:
    """A second handle on the same journal whose leases lapse at once: a run it creates is
    free for the first worker that claims it (this process never drives it)."""
    if isinstance(journal, SQLiteJournal):
        return SQLiteJournal(journal.path, lease_seconds=0, synchronous=journal.synchronous)
    from ...journal.postgres import PostgresJournal

    if isinstance(journal, PostgresJournal):
        return PostgresJournal(journal.target.dsn, lease_seconds=0, pool_size=2,
                               migrate_schema=False)
    raise TypeError(f"no hand-off for a {type(journal).__name__}")


def create_queued_run(journal: Journal, config: Config, playbook: Playbook,
                      event: dict[str, Any], risk: dict[str, Any], *, run_id: str,
                      on_event: EventSink | None = None) -> dict[str, Any]:
    """Create the run in `journal` (a `handoff_journal`) as `Runner.run` would, drive
    nothing, and return its record (every step pending)."""
    inputs = run_inputs(playbook, config, run_id, event, risk)
    redacted = config.redactor.redact_value(inputs)
    journal.create_run(run_id, playbook.name, playbook.text, inputs=redacted,
                       playbook_path=playbook.source or None, kind=RunKind.RUN,
                       config_path=config.source or None)
    started = {"type": str(EventType.RUN_STARTED), "playbook": playbook.name,
               "inputs": redacted, "run_id": run_id, "at": utc_now()}
    journal.append(started)
    if on_event is not None:
        on_event(started)
    conductor = Conductor(playbook, inputs)
    conductor.apply(started)
    return dict(config.redactor.redact_value(conductor.record(run_id)))


class QueuedRespond:
    """`respond(...)` for the service's intake with a broker (same arguments and results)."""

    def __init__(self, queue: RunQueue, journal: Journal):
        self.queue = queue
        self.journal = handoff_journal(journal)

    def close(self) -> None:
        self.journal.close()

    def __call__(self, triage: Triage, host: PluginHost, config: Config,
                 events: Iterable[ModelMovementEvent], *, journal: Journal | None = None,
                 on_event: EventSink | None = None, **_: Any) -> list[Response]:
        verdicts = [triage.triage_event(event) for event in events]
        problems = unready_runs(verdicts, host, config)
        if problems:
            raise not_ready_error(problems, config)
        responses = []
        for verdict in verdicts:
            verdict = triage.claim(verdict)
            response = Response(verdict)
            for playbook in verdict.playbooks:
                response.runs.append(self._start(triage, config, verdict, playbook, on_event))
            responses.append(response)
        return responses

    def _start(self, triage: Triage, config: Config, verdict: Any, playbook: Playbook,
               on_event: EventSink | None) -> dict[str, Any]:
        run_id = uuid.uuid4().hex
        at = verdict.event.time.timestamp()
        triage.router.started(playbook.name, verdict.event, at=at, run_id=run_id)
        try:
            record = create_queued_run(self.journal, config, playbook, verdict.event_data,
                                       verdict.risk_data, run_id=run_id, on_event=on_event)
        except BaseException:
            triage.router.release(playbook.name, verdict.event, at=at)  # nothing started
            raise
        try:
            self.queue.enqueue(run_id)
        except BrokerUnavailable as exc:  # the sweeper sends it once Redis is back
            log.warning("%s", exc)
        return record
