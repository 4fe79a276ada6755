"""What a worker does with a run id: claim the run's lease, drive it, heartbeat, let go.

The journal decides. `Performer.perform(run_id)` skips a run that has ended, is cancelled, is
held by another live process, or waits with nothing to settle (a message delivered twice, or
sent by the sweeper after another worker took the run). A run this process is driving already
(the same message twice, in two threads) is skipped too: the journal's lease belongs to the
process, so the process keeps its own list. Otherwise it resumes the run (`runs.resume`, what
`crownguard resume` does: finished steps are not run again, steps that were in flight start
again with the same idempotency keys), with a heartbeat thread renewing the lease every third
of its length while steps are quiet. When the drive ends, the run has ended or waits: the
lease is gone with it. A drive that raised frees the lease (a resume failure, recorded).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ... import runs
from ...config import Config
from ...errors import CrownguardError, JournalError, RunEnded, RunHeldElsewhere, RunStateError
from ...journal import Journal
from ...kinds import ENDED, RunStatus
from ...plugins import PluginHost

log = logging.getLogger("crownguard.worker")
EventSink = Callable[[dict[str, Any]], None]


class Outcome(StrEnum):
    PERFORMED = "performed"  # driven to its end or its next wait
    ENDED = "ended"          # nothing to do: it ended (or was cancelled) already
    HELD = "held"            # another live process (or thread here) has it
    NOT_DUE = "not_due"      # it waits, and no answer or expiry is there to settle
    FAILED = "failed"        # it could not be resumed: recorded in the journal


@dataclass(frozen=True)
class Performed:
    run_id: str
    outcome: Outcome
    status: str | None = None
    detail: str = ""


class Performer:
    """Performs runs by id against one journal, many at once (one per worker slot)."""

    def __init__(self, journal: Journal, host: PluginHost, *, config_path: str | None,
                 config: Config | None = None, on_taken: Callable[[str], None] | None = None,
                 on_event: EventSink | None = None):
        self.journal, self.host, self.config_path = journal, host, config_path
        self.config = config  # loaded once: its sessions and rate limiter shared by all runs
        self.on_taken = on_taken
        self.on_event = on_event
        self.heartbeat_seconds = max(getattr(journal, "lease_seconds", 60.0) / 3.0, 0.05)
        self.playbooks = runs.PlaybookCache(host)
        self._driving: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def _mine(self, run_id: str) -> Iterator[bool]:
        with self._lock:
            taken = run_id not in self._driving
            self._driving.add(run_id)
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._driving.discard(run_id)

    def perform(self, run_id: str) -> Performed:
        with self._mine(run_id) as mine:
            if not mine:
                return Performed(run_id, Outcome.HELD, detail="driven by this process")
            return self._perform(run_id)

    def _perform(self, run_id: str) -> Performed:
        try:
            run = self.journal.get_run(run_id)
        except CrownguardError as exc:
            return Performed(run_id, Outcome.FAILED, detail=str(exc))
        if run.status in ENDED:
            return Performed(run_id, Outcome.ENDED, str(run.status))
        if run.status == RunStatus.WAITING and not self._due(run):
            return Performed(run_id, Outcome.NOT_DUE, str(run.status))
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(run_id, stop), daemon=True,
                                name=f"crownguard-lease-{run_id[:8]}")
        beat.start()
        try:
            outcome = runs.resume(self.journal, self.host, run_id, config_path=self.config_path,
                                  on_event=self._taken(run_id), playbooks=self.playbooks,
                                  config=self.config)
        except (RunHeldElsewhere, RunStateError, RunEnded) as exc:
            # Held by another live process, ended or cancelled meanwhile: not ours to do.
            state = self._status(run_id)
            return Performed(run_id, Outcome.ENDED if state in ENDED else Outcome.HELD, state,
                             str(exc))
        except Exception as exc:  # recorded with the run by runs.resume; the lease is free
            return Performed(run_id, Outcome.FAILED, self._status(run_id),
                             f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            beat.join(timeout=5)
        return Performed(run_id, Outcome.PERFORMED, str(outcome.status))

    def _taken(self, run_id: str) -> EventSink:
        """The run's event sink: the first event (run_resumed) means the lease is ours."""
        told = False

        def sink(event: dict[str, Any]) -> None:
            nonlocal told
            if not told:
                told = True
                if self.on_taken is not None:
                    self.on_taken(run_id)
            if self.on_event is not None:
                self.on_event(event)
        return sink

    def _due(self, run: Any) -> bool:
        try:
            return runs._wait_to_settle(self.journal, run, self.playbooks, datetime.now(UTC))
        except Exception:
            return True  # unreadable: let resume record why

    def _status(self, run_id: str) -> str | None:
        try:
            return str(self.journal.get_run(run_id).status)
        except CrownguardError:
            return None

    def _heartbeat(self, run_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_seconds):
            try:
                if not self.journal.renew_lease(run_id) and self._status(run_id) in ENDED:
                    return
            except JournalError as exc:
                log.warning("run %s: the lease could not be renewed: %s", run_id, exc)
