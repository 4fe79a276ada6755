"""How an attempt ends: its result (an output, an error, a wait) applied to the run as events,
a retry put on the timer heap, the step finished once every item is in. A part of
`execution.Execution`, kept apart to keep each module readable at once.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .actions import Action, Waiting
from .errors import ActionError
from .kinds import EventType
from .outbox import Outbox, event_time
from .steps import Attempt, CallPool, StepWork, journaled_output, retry_after_failure

if TYPE_CHECKING:
    import random

    from .conductor import Conductor
    from .config import Config
    from .outbox import EventSink
    from .plugins import PluginHost
    from .secrets import Redactor

_SUCCEEDED = str(EventType.STEP_SUCCEEDED)


class Performer(Protocol):
    """What a drive takes from the Runner (runner.py) it performs a run for."""

    host: PluginHost
    config: Config
    max_concurrency: int
    journal: EventSink | None
    on_event: EventSink | None
    dry_run: bool
    retry_jitter: random.Random


class Finishing:
    """The attempts' ends, for Execution (which sets what is declared here)."""

    attempts: dict[int, Attempt]
    calls: CallPool
    conductor: Conductor
    eventless: bool
    host: PluginHost
    hypothetical: bool
    outbox: Outbox
    redactor: Redactor
    run_id: str
    runner: Performer
    seq: itertools.count[int]
    timers: list[tuple[float, int, str, int]]
    work: dict[str, StepWork]

    def emit(self, event: dict[str, Any],
             journaled: Callable[[], dict[str, Any]] | None = None) -> None:
        raise NotImplementedError

    def _apply(self, event: dict[str, Any],
               journaled: Callable[[], dict[str, Any]] | None = None) -> None:
        raise NotImplementedError

    def _complete(self, token: int, output: Any, error: ActionError | None) -> None:
        attempt = self.attempts.pop(token, None)
        if attempt is None:
            return  # a late result after the step timed out
        if attempt.threaded:  # its slot is free (at the deadline, for one that timed out)
            self.calls.release()
        work = self.work[attempt.step]
        work.running -= 1
        item = attempt.item if attempt.item is not None else 0
        if isinstance(output, Waiting):
            if work.fan_out:
                error = ActionError("a for_each step cannot wait for an answer")
            else:
                self._wait(work, output)
                return
        if error is None:
            work.outputs[item] = output
            if work.fan_out:
                redacted = self.redactor.redact_value(output)
                self.emit({"type": EventType.ITEM_SUCCEEDED, "step": attempt.step,
                           "item": item, "output": redacted},
                          lambda: {"output": journaled_output(work.action, redacted)})
        else:
            self._attempt_failed(work, attempt, item, error)
        if work.running == 0 and not work.todo:
            if work.error is not None:
                self._drop_timers(work.step.id)
                self._fail_step(work.step.id, work.error)
            elif len(work.outputs) == len(work.inputs):
                self._finish_work(work)

    def _attempt_failed(self, work: StepWork, attempt: Attempt, item: int,
                        error: ActionError) -> None:
        retry = retry_after_failure(work, attempt, error, self.redactor,
                                    self.runner.retry_jitter)
        failed: dict[str, Any] = {"type": EventType.ATTEMPT_FAILED, "step": attempt.step,
                                  "attempt": attempt.attempt, "error": retry.message,
                                  "error_type": error.kind, "retryable": error.retryable,
                                  "retry_in": retry.delay}
        if work.fan_out:
            failed["item"] = item
        self.emit(failed)
        if retry.delay is not None:
            heapq.heappush(self.timers, (time.monotonic() + retry.delay, next(self.seq),
                                         attempt.step, item))
            return
        work.error = f"item {item}: {retry.message}" if work.fan_out else retry.message
        work.todo.clear()

    def _wait(self, work: StepWork, waiting: Waiting) -> None:
        expires = None
        if waiting.timeout_seconds is not None:
            at = datetime.now(UTC) + timedelta(seconds=waiting.timeout_seconds)
            expires = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
        self.emit({"type": EventType.STEP_WAITING, "step": work.step.id,
                   "reason": self.redactor.redact(waiting.reason), "expires_at": expires,
                   "data": self.redactor.redact_value(waiting.data)})
        del self.work[work.step.id]

    def _drop_timers(self, step_id: str) -> None:
        self.timers = [t for t in self.timers if t[2] != step_id]
        heapq.heapify(self.timers)

    def _finish_work(self, work: StepWork) -> None:
        output = ([work.outputs[i] for i in range(len(work.inputs))] if work.fan_out
                  else work.outputs[0])
        del self.work[work.step.id]
        self._succeed(work.step.id, work.action, output, work.shown)

    def _succeed(self, step_id: str, action: Action, output: Any, shown: bool = False) -> None:
        """The step's step_succeeded (`shown`: a dry run's, its output made up)."""
        redacted = self.redactor.redact_value(output)
        if self.eventless:
            self.conductor.succeeded(step_id, event_time(), redacted)
        else:
            event = {"type": _SUCCEEDED, "step": step_id, "output": redacted}
            if shown:
                event["output_unknown"] = True
            event["run_id"], event["at"] = self.run_id, event_time()
            self._apply(event, lambda: {"output": journaled_output(action, redacted)})
        self._notify_finished(step_id)

    def _fail_step(self, step_id: str, message: str) -> None:
        self.emit({"type": EventType.STEP_FAILED, "step": step_id,
                   "error": self.redactor.redact(message)})
        self.work.pop(step_id, None)
        self._notify_finished(step_id)

    def _notify_finished(self, step_id: str) -> None:
        if self.hypothetical or not self.host.observed("crownguard_step_finished"):
            return
        result = self.redactor.redact_value(self.conductor.steps[step_id].record())
        self.outbox.later(lambda: self.host.notify("crownguard_step_finished",
                                                   run_id=self.run_id, step_id=step_id,
                                                   result=result))

