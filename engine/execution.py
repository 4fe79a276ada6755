"""One drive of one run: the runner's coordinating loop, which performs what the conductor
decides.

Ready steps run on a thread pool, at most `max_concurrency` calls at once; the
coordinating loop (the caller's thread) applies every state change as an event to the conductor
and hands it to the journal and observers. A step waiting for a slot waits in the loop's queue:
it starts (journaled, timeout running) when its action is called (`queued_seconds` says how
long it waited). Retries wait on a timer heap, never on a thread; a step past its timeout is
failed at the deadline and its late result ignored. What one step needs (its inputs, the
action call, whether a failed attempt is retried) is in `steps`.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .actions import Action, ActionContext, Waiting, timeout_message
from .conductor import Conductor, Decision
from .errors import ActionError, ExpressionError, InputError, StepTimeout
from .finishing import Finishing, Performer
from .journal import Journal
from .kinds import ENDED, EventType, RunStatus
from .outbox import Outbox, event_time
from .spec import Playbook, Step
from .steps import (
    Attempt,
    CallPool,
    ItemsUnknown,
    StepWork,
    call_action,
    items_unknown_output,
    journaled_inputs,
    plain_inputs,
    settled_waits,
    step_inputs,
    step_logger,
    would_call,
)

if TYPE_CHECKING:

    pass

# The text of the two events every step has, as emit() stores a type.
_STARTED, _SUCCEEDED = str(EventType.STEP_STARTED), str(EventType.STEP_SUCCEEDED)
HEARTBEAT_SECONDS = 60.0  # well inside the journal's default 300 s lease


class Execution(Finishing):
    """One drive of one run: the coordinating loop (how attempts end: finishing.Finishing)."""

    def __init__(self, runner: Performer, playbook: Playbook, conductor: Conductor, run_id: str):
        self.runner = runner
        self.host = runner.host
        self.playbook = playbook
        self.conductor = conductor
        self.run_id = run_id
        self.redactor = runner.config.redactor
        # SimpleQueue: a put and a get per attempt, without queue.Queue's locks and conditions.
        self.done: queue.SimpleQueue[tuple[int, Any, ActionError | None]] = queue.SimpleQueue()
        self.attempts: dict[int, Attempt] = {}
        self.work: dict[str, StepWork] = {}
        self.timers: list[tuple[float, int, str, int]] = []  # (due, seq, step, item)
        self.tokens = itertools.count(1)
        self.seq = itertools.count()
        self.next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        self.not_before: dict[tuple[str, int | None], float] = {}  # set by resume
        self.events: list[dict[str, Any]] = []  # a dry run's, to play its waits' answers
        self.hypothetical = False  # a dry run's path after one answer: not journaled, observed
        self.queued: dict[tuple[str, int], float] = {}  # (step, item) -> monotonic queued at
        self.calls = CallPool(runner.max_concurrency, f"cg-{run_id[:8]}")
        self.outbox = Outbox(runner.journal, runner.on_event)
        self.durable = isinstance(runner.journal, Journal)  # has a lease to keep
        self.dry_run = runner.dry_run
        # No journal and no on_event: the outbox would keep nothing of an event.
        self.unread = runner.journal is None and runner.on_event is None
        # Nor a dry run (which keeps its events): a step's start and success go to the
        # conductor without an event made for them (Conductor.started, .succeeded).
        self.eventless = self.unread and not self.dry_run

    def settle_waits(self, answers: dict[str, dict[str, Any]], now: datetime) -> None:
        for event in settled_waits(self.conductor, answers, now, self.redactor):
            self.emit(event)
            self._notify_finished(event["step"])

    def after_answer(self, events: list[dict[str, Any]],
                     answer: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A dry run's run from `events` on, after a wait got `answer` (dryrun.plan_answers)."""
        branch = Execution(self.runner, self.playbook,
                            Conductor.replay(self.playbook, self.conductor.inputs, events),
                            self.run_id)
        branch.hypothetical = True
        branch.emit(answer)
        branch._loop()
        if branch.conductor.status() in ENDED:
            branch.emit({"type": EventType.RUN_FINISHED, "status": str(branch.conductor.status())})
        branch.outbox.flush()
        return self.redactor.redact_value(branch.conductor.record(self.run_id)), branch.events

    # events ------------------------------------------------------------------------------------

    def emit(self, event: dict[str, Any],
             journaled: Callable[[], dict[str, Any]] | None = None) -> None:
        """Apply the event, journaled first; `journaled()` gives keys that replace those in
        what is stored (a large output kept by digest), while this run goes on with the full
        values. It is called only when something reads what is stored."""
        self._apply({**event, "type": str(event["type"]), "run_id": self.run_id,
                     "at": event_time()}, journaled)

    def _apply(self, event: dict[str, Any],
               journaled: Callable[[], dict[str, Any]] | None = None) -> None:
        """`emit` of an event made whole (its type as text, run_id and at last) by a caller
        that builds one per step: no copy of it."""
        self.conductor.apply(event)
        if self.dry_run:
            self.events.append(event)
        if self.unread:
            return
        # Durable before anything acts on it: the outbox is flushed before the next action
        # call that is not inline, before the loop waits, and when the drive ends.
        kept = not self.hypothetical
        outbox = self.outbox
        if journaled is not None and outbox.keeps(kept):
            event = {**event, **journaled()}
        outbox.add(event, kept)

    # the loop ----------------------------------------------------------------------------------

    def drive(self) -> dict[str, Any]:
        self._loop()
        status = self.conductor.status()
        record = self.conductor.record(self.run_id)
        if status in ENDED:  # the outcome sentence too: the timeline and audit export show it
            self.emit({"type": EventType.RUN_FINISHED, "status": str(status),
                       "outcome": record["outcome"]})
        self.outbox.flush()
        if status == RunStatus.WAITING and isinstance(self.runner.journal, Journal):
            self.runner.journal.set_status(self.run_id, RunStatus.WAITING)
        # Every value the conductor holds went through redact_value when it came in; this
        # walk masks what a secret learned since would show, and keeps the record apart from
        # the events observers were given. Neither can be when there were no events and no
        # secret is known (none were before either).
        if not self.eventless or self.redactor.knows_secrets():
            record = self.redactor.redact_value(record)
        self.host.notify("crownguard_run_finished", record=record)
        return dict(record)

    def _loop(self) -> None:
        try:
            while True:
                # A skip or a failure can make further steps decidable at once: decide until
                # nothing more is. Each decided step is started (in self.work) or final, so
                # when none became final, deciding again would find nothing.
                while True:
                    settled = self.conductor.settled
                    decisions = self.conductor.decide(skip=self.work)
                    if len(decisions) == 1 and self._run_alone(decisions[0]):
                        continue
                    for decision in decisions:
                        if decision.error:
                            self._fail_step(decision.step, decision.error)
                        elif decision.run:
                            self._start_step(self.playbook.step(decision.step), decision.unknown)
                        else:
                            self.emit({"type": EventType.STEP_SKIPPED, "step": decision.step,
                                       "reason": decision.reason})
                            self._notify_finished(decision.step)
                    if not decisions or self.conductor.settled == settled:
                        break
                self._dispatch()
                if not self.attempts and not self.timers:
                    return
                self._wait_and_collect()
        finally:
            self.calls.close()

    def _run_alone(self, decision: Decision) -> bool:
        """Run a step at once when it is the only one to start, nothing else is in flight or
        due and its action is inline (no dry run, no for_each): the calls the loop would
        make, in its order, without its rounds. False when it is not such a step."""
        if (not decision.run or decision.error or decision.unknown or self.dry_run
                or self.work or self.attempts or self.timers):
            return False
        step = self.playbook.step(decision.step)
        action = self.host.actions.get(step.action)
        # (After a resume, a retry whose backoff has not passed yet goes the loop's way.)
        if (action is None or not action.inline or step.for_each is not None
                or self.not_before):
            return False
        # What _start_step, _begin and _complete do for one plain inline attempt, without
        # the loop's queue, tokens and attempts: those are made only when it did not succeed.
        conductor = self.conductor
        context = conductor.context()  # the action's too: its `steps` is the live view
        try:
            inputs = plain_inputs(step, action, context)
        except (ExpressionError, InputError) as exc:
            self._fail_step(step.id, self.redactor.redact(str(exc)))
            return True
        attempt_no = conductor.steps[step.id].attempts + 1
        timeout = step.timeout_seconds
        deadline = (time.monotonic() + timeout) if timeout else None
        redacted = self._started(step, action, inputs, attempt_no, 0.0, None)  # no slot
        ctx = ActionContext(run_id=self.run_id, step_id=step.id, attempt=attempt_no,
                            connections=self.runner.config.connections, deadline=deadline,
                            run_context=context, timeout_seconds=timeout,
                            logger=step_logger(step.id))
        self._notify_started(ctx, inputs, redacted)
        output, error = call_action(action, ctx, inputs)
        if self.durable:
            self._heartbeat()  # where the loop would wait for that result
        if error is None and not isinstance(output, Waiting):
            self._succeed(step.id, action, output)
        else:  # a retry, a failure or a wait: as the loop completes an attempt
            self.work[step.id] = StepWork(step, action, [inputs], False, running=1)
            token = next(self.tokens)
            self.attempts[token] = Attempt(token, step.id, None, attempt_no, deadline, None)
            self._complete(token, output, error)
        return True

    def _dispatch(self) -> None:
        """Start queued items while their step has room and the run a free slot (if needed)."""
        now = time.monotonic() if self.timers else 0.0
        while self.timers and self.timers[0][0] <= now:
            _, _, step_id, item = heapq.heappop(self.timers)
            if step_id in self.work:
                self.work[step_id].todo.insert(0, item)
                self.queued[(step_id, item)] = now  # due: queued from now on
        launches: list[Callable[[], None]] = []
        acts = False  # an action that is not inline is called: journal what led to it first
        for work in list(self.work.values()):
            limit = work.step.concurrency if work.fan_out else 1
            threaded = not work.shown and not work.action.inline
            while work.todo and work.running < limit and work.error is None:
                if threaded and not self.calls.free():
                    break
                item = work.todo.pop(0)
                work.running += 1
                if threaded:
                    self.calls.take()
                launches.append(self._submit(work, item))
                acts = acts or threaded
        if acts:
            self.outbox.flush()
        for launch in launches:
            launch()

    def _heartbeat(self) -> None:
        """Keep the journal's lease on the run while steps are quiet for long."""
        if self.durable and time.monotonic() >= self.next_heartbeat:
            self.runner.journal.renew_lease(self.run_id)  # type: ignore[union-attr]
            self.next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS

    def _wait_and_collect(self) -> None:
        self._heartbeat()
        timeout: float | None = 0.0  # a result is in already (an inline call's): no wait
        if self.done.empty():  # about to wait: what happened so far is journaled first
            wakeups = [a.deadline for a in self.attempts.values() if a.deadline is not None]
            wakeups += [t[0] for t in self.timers[:1]]
            if self.durable:
                wakeups.append(self.next_heartbeat)
            timeout = max(0.0, min(wakeups) - time.monotonic()) if wakeups else None
            self.outbox.flush()
        try:
            token, output, error = self.done.get(timeout=timeout)
        except queue.Empty:
            pass
        else:
            self._complete(token, output, error)
            while not self.done.empty():  # drain what else finished (this loop alone takes)
                self._complete(*self.done.get_nowait())
        if not self.attempts:
            return
        now = time.monotonic()
        for attempt in [a for a in self.attempts.values()
                        if a.deadline is not None and a.deadline <= now]:
            # Only a call on a thread can be in flight here: an inline one's result is in
            # (and collected above) before the loop waits.
            if attempt.cancelled is not None:
                attempt.cancelled.set()
            step = self.playbook.step(attempt.step)
            self._complete(attempt.token, None, StepTimeout(
                timeout_message(attempt.step, step.timeout_seconds)))

    # starting ----------------------------------------------------------------------------------

    def _start_step(self, step: Step, condition: frozenset[str] = frozenset(),
                    action: Action | None = None) -> None:
        """Start the step (its action, when the caller looked it up already)."""
        if action is None:
            try:
                action = self.host.action(step.action)
            except Exception as exc:
                self._fail_step(step.id, str(exc))
                return
        try:
            work = step_inputs(step, action, self.conductor, dry_run=self.dry_run,
                               not_called=self.conductor.unknown_outputs, condition=condition)
        except (ExpressionError, InputError) as exc:
            self._fail_step(step.id, self.redactor.redact(str(exc)))
            return
        if isinstance(work, ItemsUnknown):
            self.emit({"type": EventType.STEP_SUCCEEDED, "step": step.id,
                       "output": items_unknown_output(step, action, work),
                       "output_unknown": True})
            self._notify_finished(step.id)
            return
        if work.fan_out:  # on resume, for_each items that already finished are not run again
            work.outputs = dict(self.conductor.steps[step.id].items)
            work.todo = [i for i in range(len(work.inputs)) if i not in work.outputs]
        else:
            work.todo = [0]
        for item in list(work.todo) if self.not_before else ():
            due = self.not_before.pop((step.id, item if work.fan_out else None), None)
            if due is not None and due > time.monotonic():
                work.todo.remove(item)
                heapq.heappush(self.timers, (due, next(self.seq), step.id, item))
        now = time.monotonic()
        for item in work.todo:
            self.queued[(step.id, item)] = now
        self.work[step.id] = work
        if not work.todo and len(work.outputs) == len(work.inputs):
            self._finish_work(work)

    def _submit(self, work: StepWork, item: int) -> Callable[[], None]:
        """Start one attempt: its step_started event, and what calls it (its timeout runs
        from now); the caller journals the event before it calls."""
        attempt, ctx, redacted = self._begin(work, item)
        inputs = work.inputs[item]

        def launch() -> None:
            self._notify_started(ctx, inputs, redacted)
            if work.shown:
                # A dry run changes nothing anywhere: read-only look-ups still run (so
                # conditions and inputs that depend on them resolve), side-effecting actions
                # do not, nor any action whose inputs depend on the output of one that did not.
                self.done.put((attempt.token, would_call(work, inputs, self.redactor), None))
            elif not attempt.threaded:
                self._call(work.action, ctx, inputs, attempt.token)
            else:
                self.calls.submit(self._call, work.action, ctx, inputs, attempt.token)
        return launch

    def _begin(self, work: StepWork, item: int
               ) -> tuple[Attempt, ActionContext, dict[str, Any] | None]:
        """An attempt in flight, its step_started applied: the attempt, its context and its
        inputs as redacted (None when no event was made of them)."""
        step = work.step
        state = self.conductor.steps[step.id]
        attempt_no = (state.item_attempts.get(item, 0) if work.fan_out else state.attempts) + 1
        token = next(self.tokens)
        now = time.monotonic()
        queued = max(0.0, now - self.queued.pop((step.id, item), now))
        deadline = (now + step.timeout_seconds) if step.timeout_seconds else None
        threaded = not work.shown and not work.action.inline
        # Only a call on a thread can be cancelled at its deadline: an inline one gets its
        # event (from the context) on first use, for what a threading.Event costs.
        attempt = Attempt(token, step.id, item if work.fan_out else None, attempt_no, deadline,
                          threading.Event() if threaded else None, threaded)
        self.attempts[token] = attempt
        redacted = self._started(step, work.action, work.inputs[item], attempt_no,
                                 round(queued, 6), attempt.item)
        ctx = ActionContext(run_id=self.run_id, step_id=step.id, attempt=attempt_no,
                            connections=self.runner.config.connections, deadline=deadline,
                            item_index=attempt.item, dry_run=self.dry_run,
                            cancelled=attempt.cancelled,
                            run_context=self.conductor.context(),
                            timeout_seconds=step.timeout_seconds, logger=step_logger(step.id))
        return attempt, ctx, redacted

    def _started(self, step: Step, action: Action, inputs: dict[str, Any], attempt_no: int,
                 queued: float, item: int | None) -> dict[str, Any] | None:
        """Apply an attempt's step_started: its inputs as redacted, or None when nothing
        reads events (the conductor then takes it without one, nor a copy of the inputs)."""
        if self.eventless:
            self.conductor.started(step.id, event_time(), queued, item)
            return None
        redacted = self.redactor.redact_value(inputs)
        event: dict[str, Any] = {"type": _STARTED, "step": step.id, "attempt": attempt_no,
                                 "inputs": redacted, "queued_seconds": queued}
        if item is not None:
            event["item"] = item
        event["run_id"], event["at"] = self.run_id, event_time()
        self._apply(event, lambda: {"inputs": journaled_inputs(action, redacted)})
        return redacted

    def _notify_started(self, ctx: ActionContext, inputs: dict[str, Any],
                        redacted: dict[str, Any] | None) -> None:
        if self.hypothetical:
            return
        if redacted is None:
            if not self.host.observed("crownguard_step_started"):
                return
            redacted = self.redactor.redact_value(inputs)
        self.host.notify("crownguard_step_started", run_id=self.run_id,
                         step_id=ctx.step_id, attempt=ctx.attempt, inputs=redacted)

    def _call(self, action: Action, ctx: ActionContext, inputs: dict[str, Any],
              token: int) -> None:
        """Runs on a pool thread: call the action, report back to the loop."""
        output, error = call_action(action, ctx, inputs)
        self.done.put((token, output, error))
