"""The conductor decides; it never performs I/O.

It holds the run's state as plain data, takes in events (dicts that a journal can store and
replay) and says which steps are ready to start or must be skipped. The runner does the work and
feeds the results back as events. Replaying the same events always gives the same state.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .dryrun import outputs_read
from .errors import ExpressionError, TransitionError
from .expressions import evaluate, reads, truthy
from .kinds import CANCELLABLE, FINAL, IN_FLIGHT, EventType, RunStatus, StepStatus, When
from .outcome import FailedStep, WaitEnd, outcome_fields, wait_end

if TYPE_CHECKING:
    from .spec import Playbook, Step


# Which event moves a step to which status, and from where that is allowed: the one guard.
# None leaves CANCELLED (a run_cancelled event puts every CANCELLABLE step there), so nothing
# of a cancelled run can start again, even on replay.
TRANSITIONS: dict[EventType, tuple[frozenset[StepStatus], StepStatus]] = {
    EventType.STEP_STARTED: (frozenset({StepStatus.PENDING, StepStatus.RUNNING,
                                        StepStatus.WAITING}), StepStatus.RUNNING),
    EventType.ATTEMPT_FAILED: (frozenset({StepStatus.RUNNING}), StepStatus.RUNNING),
    EventType.ITEM_SUCCEEDED: (frozenset({StepStatus.RUNNING}), StepStatus.RUNNING),
    EventType.STEP_WAITING: (frozenset({StepStatus.RUNNING}), StepStatus.WAITING),
    # From PENDING: a for_each over an empty list succeeds without any attempt.
    EventType.STEP_SUCCEEDED: (frozenset({StepStatus.PENDING, StepStatus.RUNNING,
                                          StepStatus.WAITING}), StepStatus.SUCCEEDED),
    EventType.STEP_FAILED: (frozenset({StepStatus.PENDING, StepStatus.RUNNING,
                                       StepStatus.WAITING}), StepStatus.FAILED),
    EventType.STEP_SKIPPED: (frozenset({StepStatus.PENDING}), StepStatus.SKIPPED),
}


# An event's type by its text: a dict look-up per event instead of the enum's call (which
# still raises for an unknown type).
_EVENT_TYPES: dict[str, EventType] = {str(kind): kind for kind in EventType}
_FINISHING = frozenset({EventType.STEP_SUCCEEDED, EventType.STEP_FAILED, EventType.STEP_SKIPPED})
_RUN_EVENTS = frozenset({EventType.RUN_STARTED, EventType.RUN_RESUMED, EventType.RUN_CANCELLED,
                         EventType.RUN_FINISHED})
# Looked up once: apply() runs twice per step, and an enum member's look-up costs a call.
_STARTED, _FAILED, _SKIPPED, _WAITING, _ITEM_SUCCEEDED = (
    EventType.STEP_STARTED, EventType.STEP_FAILED, EventType.STEP_SKIPPED,
    EventType.STEP_WAITING, EventType.ITEM_SUCCEEDED)
_STEP_SUCCEEDED = EventType.STEP_SUCCEEDED
_PENDING, _RUNNING, _SUCCEEDED = StepStatus.PENDING, StepStatus.RUNNING, StepStatus.SUCCEEDED
_RUNNING_TEXT, _SUCCEEDED_TEXT = str(_RUNNING), str(_SUCCEEDED)
_ON_SUCCESS, _ON_FAILURE = When.SUCCESS, When.FAILURE


@dataclass
class StepState:
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    output: Any = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    items: dict[int, Any] = field(default_factory=dict)  # finished for_each items -> output
    waiting: dict[str, Any] | None = None  # reason, expires_at, data of a pending wait
    item_attempts: dict[int, int] = field(default_factory=dict)
    wait_end: WaitEnd | None = None  # a wait that failed: rejected, or expired unanswered
    # Seconds its first attempt waited for a free max_concurrency slot before its call (and
    # started_at) - time its timeout did not count.
    queued_seconds: float | None = None

    def record(self) -> dict[str, Any]:
        return {"status": str(self.status), "output": self.output, "error": self.error,
                "attempts": self.attempts, "started_at": self.started_at,
                "finished_at": self.finished_at, "queued_seconds": self.queued_seconds}


@dataclass(frozen=True)
class Decision:
    step: str
    run: bool
    reason: str = ""
    error: str | None = None  # the `if` could not be evaluated: the step fails
    # A dry run cannot evaluate the `if`: it reads the outputs of these steps, not called.
    unknown: frozenset[str] = frozenset()


@lru_cache(maxsize=4096)
def _go(step_id: str) -> Decision:
    """The decision to start a step, made once per step id (a frozen dataclass costs more to
    build than the rest of the decision)."""
    return Decision(step_id, True)


class Conductor:
    """Run state for one playbook run, advanced only by `apply(event)`."""

    def __init__(self, playbook: Playbook, inputs: dict[str, Any]):
        self.playbook = playbook
        self.inputs = inputs  # event, vars, risk, run: fixed for the run
        self.steps: dict[str, StepState] = {s.id: StepState() for s in playbook.steps}
        # Derived indexes, kept in step with `steps` by apply(): how many needs of each step
        # are not final yet, which pending steps have none left, and the expression view.
        self._order = playbook.order  # read only
        self._open_needs = dict(playbook.need_counts)
        self._ready = {sid for sid, n in self._open_needs.items() if n == 0}
        self._view = {sid: self._view_of(state) for sid, state in self.steps.items()}
        self.cancelled = False
        # How many times a step became final: only that (or a requeue) makes another ready.
        self.settled = 0
        # Steps a dry run did not call (or a wait's answer it made up): their outputs are not
        # known, so expressions reading them are not evaluated (`output_unknown` events).
        self.unknown_outputs: set[str] = set()
        self.started_at: str | None = None
        self.finished_at: str | None = None

    @classmethod
    def replay(cls, playbook: Playbook, inputs: dict[str, Any],
               events: Iterable[dict[str, Any]]) -> Conductor:
        """The state a run's journaled events lead to (the one way to rebuild a run)."""
        conductor = cls(playbook, inputs)
        for event in events:
            conductor.apply(event)
        return conductor

    # events in --------------------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        kind = _EVENT_TYPES.get(event["type"]) or EventType(event["type"])
        if kind in _RUN_EVENTS:
            self._apply_to_run(kind, event.get("at"))
            return
        if kind is _STARTED:  # the most frequent, with the finishing ones
            self.started(event["step"], event.get("at"), event.get("queued_seconds"),
                         event.get("item"))
            return
        step_id = event["step"]
        state = self._state(step_id, kind)
        target = TRANSITIONS[kind][1]
        at = event.get("at")
        if kind is _FAILED and state.status == StepStatus.WAITING:
            state.wait_end = wait_end(event.get("error"))
        if kind in _FINISHING:  # before the status: _set_status builds the view of both once
            state.finished_at = at
            state.output = event.get("output")
            state.error = event.get("error")
            state.reason = event.get("reason")
            if event.get("output_unknown"):
                self.unknown_outputs.add(step_id)
            if kind is _SKIPPED:
                state.started_at = None
                state.queued_seconds = None
        self._set_status(step_id, target)
        if kind is _WAITING:
            state.waiting = {k: event.get(k) for k in ("reason", "expires_at", "data")}
        elif kind is _ITEM_SUCCEEDED:
            state.items[event["item"]] = event.get("output")

    def started(self, step_id: str, at: str | None, queued_seconds: float | None = None,
                item: int | None = None) -> None:
        """apply() of a step_started event, which the runner also calls without one when
        nothing reads its events (no journal, no on_event, no dry run)."""
        state = self._state(step_id, _STARTED)
        # _set_status from a status that is neither final nor pending
        state.status = _RUNNING
        self._ready.discard(step_id)
        self._view[step_id] = {"status": _RUNNING_TEXT, "output": state.output,
                               "error": state.error}
        state.attempts += 1
        if state.started_at is None:
            state.started_at = at
            state.queued_seconds = queued_seconds
        if item is not None:
            state.item_attempts[item] = state.item_attempts.get(item, 0) + 1

    def succeeded(self, step_id: str, at: str | None, output: Any) -> None:
        """apply() of a step_succeeded event with no `output_unknown`, as `started` is."""
        state = self._state(step_id, _STEP_SUCCEEDED)
        state.finished_at = at
        state.output = output
        state.error = state.reason = None
        # _set_status from a status that is not final
        state.status = _SUCCEEDED
        self._ready.discard(step_id)
        self._settled(step_id)
        self._view[step_id] = {"status": _SUCCEEDED_TEXT, "output": output, "error": None}

    def _state(self, step_id: str, kind: EventType) -> StepState:
        """The step's state, which an event of `kind` may move on."""
        state = self.steps.get(step_id)
        if state is None:
            raise TransitionError(f"event for unknown step '{step_id}'")
        if state.status not in TRANSITIONS[kind][0]:
            raise TransitionError(f"step '{step_id}': {kind} is not allowed while it is "
                                  f"{state.status}")
        return state

    def _apply_to_run(self, kind: EventType, at: str | None) -> None:
        if kind == EventType.RUN_STARTED:
            self.started_at = at
        elif kind == EventType.RUN_CANCELLED:
            self.cancelled = True
            self.finished_at = at
            for sid, state in self.steps.items():
                if state.status in CANCELLABLE:
                    self._set_status(sid, StepStatus.CANCELLED)
                    state.finished_at = at
        elif kind == EventType.RUN_FINISHED:
            self.finished_at = at

    @staticmethod
    def _view_of(state: StepState) -> dict[str, Any]:
        return {"status": str(state.status), "output": state.output, "error": state.error}

    def _set_status(self, step_id: str, status: StepStatus) -> None:
        state = self.steps[step_id]
        was_final = state.status in FINAL
        state.status = status
        if status != _PENDING:
            self._ready.discard(step_id)
        elif self._open_needs[step_id] == 0:
            self._ready.add(step_id)
        if status in FINAL and not was_final:
            self._settled(step_id)
        self._view[step_id] = self._view_of(state)

    def _settled(self, step_id: str) -> None:
        """The step became final: one need less for each of its successors."""
        self.settled += 1
        open_needs = self._open_needs
        for successor in self.playbook.successors[step_id]:
            open_needs[successor] -= 1
            if open_needs[successor] == 0 and self.steps[successor].status == _PENDING:
                self._ready.add(successor)

    def requeue_in_flight(self) -> list[str]:
        """After a crash: steps that were running start again (resume)."""
        requeued = [sid for sid, s in self.steps.items() if s.status == StepStatus.RUNNING]
        for sid in requeued:
            self._set_status(sid, StepStatus.PENDING)
        return requeued

    # decisions out ----------------------------------------------------------------------------

    def context(self, item: Any = None, with_item: bool = False) -> dict[str, Any]:
        """The expression context: event, steps, vars, risk, run (and item)."""
        ctx = dict(self.inputs)
        ctx["steps"] = self._view
        if with_item:
            ctx["item"] = item
        return ctx

    def decide(self, skip: Container[str] = ()) -> list[Decision]:
        """Steps whose needs are all final: start them, or skip them with a reason. Those in
        `skip` (already started by the runner) are left out before they are decided."""
        if self.cancelled:
            return []
        ready = [sid for sid in self._ready if sid not in skip]
        if len(ready) > 1:
            ready.sort(key=self._order.__getitem__)
        by_id = self.playbook.by_id
        return [self._decide(by_id[sid]) for sid in ready]

    def _decide(self, step: Step) -> Decision:
        if step.when == _ON_SUCCESS:
            for need in step.needs:
                status = self.steps[need].status
                if status != _SUCCEEDED:
                    return Decision(step.id, False, f"'{need}' {status}")
        elif step.when == _ON_FAILURE and all(self.steps[n].status != StepStatus.FAILED
                                               for n in step.needs):
            return Decision(step.id, False, "no step it needs failed")
        if step.if_ and self.unknown_outputs:
            unknown = outputs_read(reads(step.if_), self.unknown_outputs)
            if unknown:
                return Decision(step.id, True, f"if: {step.if_} depends on " + ", ".join(
                    f"steps.{s}.output" for s in sorted(unknown)), unknown=frozenset(unknown))
        if step.if_:
            try:
                ok = truthy(evaluate(step.if_, self.context()))
            except ExpressionError as exc:
                return Decision(step.id, True, error=f"if: {exc}")
            if not ok:
                return Decision(step.id, False, f"if: {step.if_} is false")
        return _go(step.id)

    # results ----------------------------------------------------------------------------------

    def in_flight(self) -> list[str]:
        return [sid for sid, s in self.steps.items() if s.status in IN_FLIGHT]

    def status(self) -> RunStatus:
        if self.cancelled:
            return RunStatus.CANCELLED
        states = self.steps.values()
        if any(s.status == StepStatus.RUNNING for s in states) or self.decide():
            return RunStatus.RUNNING
        if any(s.status == StepStatus.WAITING for s in states):
            return RunStatus.WAITING
        return RunStatus.FAILED if self.unhandled_failures() else RunStatus.SUCCEEDED

    def failed_steps(self) -> list[FailedStep]:
        """Every failed step, in playbook order: handled when a `when: failure` dependant ran
        and succeeded; a wait that failed says whether it was rejected or expired."""
        graph = self.playbook.graph
        failed = []
        for sid, state in self.steps.items():
            if state.status != StepStatus.FAILED:
                continue
            handled = any(graph.nodes[d]["step"].when == When.FAILURE
                          and self.steps[d].status == StepStatus.SUCCEEDED
                          for d in graph.successors(sid))
            failed.append(FailedStep(sid, self.playbook.step(sid).action, state.error, handled,
                                     state.wait_end))
        return failed

    def unhandled_failures(self) -> list[str]:
        """Failed steps with no `when: failure` dependant that ran and succeeded."""
        return [f.step for f in self.failed_steps() if not f.handled]

    def record(self, run_id: str) -> dict[str, Any]:
        """The run record, in the shape docs/playbooks.md fixes, with the outcome fields after it
        (`crownguard.engine.outcome`: handled failures, rejected approvals, expired waits)."""
        status = self.status()
        waiting = [sid for sid, s in self.steps.items() if s.status == StepStatus.WAITING]
        return {"run_id": run_id, "playbook": self.playbook.name, "status": str(status),
                "steps": {sid: s.record() for sid, s in self.steps.items()},
                **outcome_fields(status, self.failed_steps(), waiting)}
