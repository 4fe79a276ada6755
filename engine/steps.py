"""One step's execution: its inputs, its attempts, the action calls and their outcome.

The runner's loop (execution.py) decides when: which step starts, which attempt is submitted,
when a retry is due, what is journaled. This module knows how: render and check a step's
inputs (one set per for_each item; in a dry run, sparing the values that read outputs of steps
not called), call the action and classify what it raised, and say whether a failed attempt is
retried and after how long.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .actions import Action, ActionContext, RetryPolicy, Waiting
from .conductor import Conductor
from .dryrun import outputs_not_called, render_dry
from .errors import ActionError, ConfigError, InputError
from .expressions import compile_template, evaluate, render, renderer, to_text
from .kinds import ApprovalDecision, EventType, StepStatus
from .markup import quote, quote_value, unquote_value
from .secrets import Redactor
from .spec import Step

log = logging.getLogger("crownguard.runner")
NO_RETRY = RetryPolicy(max_attempts=1)
# What the journal keeps of one output or input value whole: above it, its digest and size.
JOURNAL_VALUE_BYTES = 256 * 1024
PREVIEW_CHARS = 1024


@functools.cache
def step_logger(step_id: str) -> logging.Logger:
    """The logger an ActionContext gives a step (`crownguard.step.<id>`), looked up once per
    step id: logging.getLogger takes a lock per call, and the runner makes a context per
    attempt. logging keeps every logger anyway, so the cache holds nothing more."""
    return logging.getLogger(f"crownguard.step.{step_id}")


@dataclass(slots=True)
class Attempt:
    """One call of a step's action (for one item) in flight."""

    token: int
    step: str
    item: int | None
    attempt: int
    deadline: float | None
    cancelled: threading.Event | None  # for a call on a thread, set at its deadline
    threaded: bool = False  # called on the CallPool: holds one of its slots


class CallPool:
    """One run's action calls on threads, at most `limit` at once: the runner starts (and
    times) an attempt only when `free()`, so no call waits in a queue with its clock running.
    The threads are the process's (`shared_threads`), started once and kept for every run;
    while one calls an action of this run it is named `name`."""

    def __init__(self, limit: int, name: str):
        self.limit = limit
        self.name = name
        self.in_flight = 0

    def free(self) -> bool:
        return self.in_flight < self.limit

    def take(self) -> None:
        """Hold a slot for a call about to be submitted."""
        self.in_flight += 1

    def submit(self, func: Callable[..., None], *args: Any) -> None:
        """Call on a thread, in a slot taken before."""
        # In the caller's context: what its logs have bound (the service's run_id) goes along.
        shared_threads().submit(self.name, contextvars.copy_context().run, func, *args)

    def release(self) -> None:
        self.in_flight -= 1

    def close(self) -> None:
        """Nothing to stop: a call still winding down (its step timed out) ends on its own."""


class _Threads:
    """Threads that call actions, shared by every run of the process: a call runs on an idle
    one, or on a new one when none is idle, so a call never waits behind another (not behind
    one that timed out and is still winding down either). Idle ones wait for the next call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = 0
        self._work: queue.SimpleQueue[tuple[str, Callable[..., Any], tuple[Any, ...]]] = \
            queue.SimpleQueue()
        self._pid = os.getpid()

    def submit(self, name: str, func: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if os.getpid() != self._pid:  # forked: the parent's threads are not here
                self._pid, self._idle, self._work = os.getpid(), 0, queue.SimpleQueue()
            self._work.put((name, func, args))
            if self._idle:
                self._idle -= 1
                return
        threading.Thread(target=self._serve, args=(self._work,), name="cg-idle",
                         daemon=True).start()

    def _serve(self, work: queue.SimpleQueue[tuple[str, Callable[..., Any], tuple[Any, ...]]]
               ) -> None:
        me = threading.current_thread()
        while True:
            me.name, func, args = work.get()
            try:
                func(*args)
            except BaseException:  # the runner's _call reports its own errors
                log.exception("an action call thread failed")
            me.name = "cg-idle"
            with self._lock:
                if work is not self._work:
                    return
                self._idle += 1


_THREADS = _Threads()


def shared_threads() -> _Threads:
    return _THREADS


@dataclass(slots=True)
class StepWork:
    """What the loop knows about a started step: its items and what is left to do."""

    step: Step
    action: Action
    inputs: list[dict[str, Any]]  # one per item (one for a plain step)
    fan_out: bool
    todo: list[int] = field(default_factory=list)
    running: int = 0
    outputs: dict[int, Any] = field(default_factory=dict)
    error: str | None = None  # set once an item failed for good: the step fails
    # A dry run shows this step instead of calling it: its action has a side effect, its
    # inputs depend on the output of a step the dry run did not call (named in `unresolved`),
    # or its `if` does (named in `condition`: it runs only if that is true).
    shown: bool = False
    unresolved: frozenset[str] = frozenset()
    condition: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ItemsUnknown:
    """A dry run's for_each step whose list reads the output of steps it did not call."""

    steps: frozenset[str]
    condition: frozenset[str] = frozenset()


# inputs ----------------------------------------------------------------------------------------

def _kind_of(value: Any) -> str:
    return {str: "a string", dict: "an object", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def step_inputs(step: Step, action: Action, conductor: Conductor, *, dry_run: bool,
                not_called: set[str], condition: frozenset[str] = frozenset()
                ) -> StepWork | ItemsUnknown:
    """The step's work: its rendered, schema-checked inputs, one per for_each item.

    Raises ExpressionError or InputError when they cannot be rendered or are invalid. In a dry
    run, a value whose template reads the output of a step that was not called is not known:
    such a step is shown instead of called, and only problems elsewhere in its inputs fail it;
    so is a step whose `if` reads such outputs (`condition`).
    """
    unresolved: set[str] = set()
    if step.for_each is not None:
        if isinstance(step.for_each, str) and dry_run:
            unknown = outputs_not_called(step.for_each, not_called)
            if unknown:  # the items themselves are not known in a dry run
                return ItemsUnknown(frozenset(unknown), condition)
        items = (render(step.for_each, conductor.context())
                 if isinstance(step.for_each, str) else step.for_each)
        if not isinstance(items, list):
            raise InputError(f"for_each gave {_kind_of(items)}, not a list")
        inputs = [_inputs(step, action, conductor.context(item, True), not_called, unresolved)
                  for item in items]
    else:
        inputs = [_inputs(step, action, conductor.context(), not_called, unresolved)]
    return StepWork(step, action, inputs, step.for_each is not None,
                    shown=dry_run and (action.side_effect or bool(unresolved) or bool(condition)),
                    unresolved=frozenset(unresolved), condition=condition)


def plain_inputs(step: Step, action: Action, context: dict[str, Any]) -> dict[str, Any]:
    """The inputs of a step with no for_each outside a dry run (step_inputs' one item)."""
    return _inputs(step, action, context, set(), set())


def _inputs(step: Step, action: Action, context: dict[str, Any], not_called: set[str],
            unresolved: set[str]) -> dict[str, Any]:
    """One set of inputs; the steps not called whose outputs they read go to `unresolved`."""
    if not not_called:
        render_inputs = _input_renderer(step, action.markup)
        inputs = render_inputs(context) if render_inputs is not None else {
            key: (render_markup(value, context) if key in action.markup
                  else render(value, context)) for key, value in step.with_.items()}
        action.validate_inputs(inputs)
        return inputs
    unknown: dict[tuple[str | int, ...], set[str]] = {}
    inputs = render_dry(step.with_, context, not_called, unknown)
    action.validate_inputs(inputs, unknown=list(unknown))
    for steps in unknown.values():
        unresolved.update(steps)
    return dict(inputs)


# A step's inputs compiled into one function (per step and markup keys), as validation.py
# keeps its validators: by the step's id, with the step to tell a new one at the same id.
_RENDERERS: dict[int, tuple[Step, tuple[str, ...], InputRenderer | None]] = {}
InputRenderer = Callable[[dict[str, Any]], dict[str, Any]]


def _input_renderer(step: Step, markup: tuple[str, ...]) -> InputRenderer | None:
    """What renders the step's inputs, or None when one of its templates does not compile:
    rendering them one by one then raises the error that comes first, as it always did."""
    cached = _RENDERERS.get(id(step))
    if cached is not None and cached[0] is step and cached[1] == markup:
        return cached[2]
    try:
        each = [(key, functools.partial(render_markup, value) if key in markup
                 else renderer(value)) for key, value in step.with_.items()]
    except Exception:
        compiled = None
    else:
        def compiled(context: dict[str, Any]) -> dict[str, Any]:
            return {key: run(context) for key, run in each}
    if len(_RENDERERS) > 4096:
        _RENDERERS.clear()
    _RENDERERS[id(step)] = (step, markup, compiled)
    return compiled


def render_markup(value: Any, context: dict[str, Any]) -> Any:
    """Render an input whose text is markup: every interpolated value quoted (markup.py), the
    template's own text as it is."""
    if isinstance(value, dict):
        return {k: render_markup(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_markup(v, context) for v in value]
    if not isinstance(value, str) or "${{" not in value:
        return value
    template = compile_template(value)
    if len(template.parts) == 1 and template.parts[0].is_expression:
        return quote_value(evaluate(template.parts[0].text, context))
    return "".join(quote(to_text(evaluate(p.text, context))) if p.is_expression else p.text
                   for p in template.parts)


def would_call(work: StepWork, inputs: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """A dry run's output for a step it shows instead of calling."""
    output: dict[str, Any] = {"dry_run": True, "would_call": work.action.name,
                              "inputs": redactor.redact_value(unquote_value(inputs))}
    if work.unresolved:
        output["depends_on_not_run"] = sorted(work.unresolved)
    return {**output, **_condition(work.step, work.condition)}


def items_unknown_output(step: Step, action: Action, unknown: ItemsUnknown) -> dict[str, Any]:
    """A dry run's output for a for_each step whose items it cannot know: shown once."""
    return {"dry_run": True, "would_call": action.name, "inputs": None,
            "for_each": step.for_each, "depends_on_not_run": sorted(unknown.steps),
            **_condition(step, unknown.condition)}


def _condition(step: Step, unknown: frozenset[str]) -> dict[str, Any]:
    """A step that runs only if its `if` holds, which a dry run cannot tell: both branches."""
    if not unknown:
        return {}
    return {"if": step.if_, "if_depends_on_not_run": sorted(unknown),
            "otherwise": "skipped"}


# what is journaled ---------------------------------------------------------------------------

def bounded(value: Any, limit: int = JOURNAL_VALUE_BYTES) -> Any:
    """The value, or when its canonical JSON is over `limit` bytes, what stands for it in the
    journal: `{truncated, sha256, size, preview}` of that JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()
    if len(text) <= limit:
        return value
    return {"truncated": True, "sha256": hashlib.sha256(text).hexdigest(), "size": len(text),
            "preview": text[:PREVIEW_CHARS].decode("utf-8", "ignore")}


def journaled_output(action: Action, output: Any) -> Any:
    """What the journal keeps of an output (an action may declare it needs all of it)."""
    return output if action.keeps_output else bounded(output)


def journaled_inputs(action: Action, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the journal keeps of a step's inputs: each large one by digest and size."""
    inputs = {key: unquote_value(value) if key in action.markup else value
              for key, value in inputs.items()}
    if action.keeps_output:
        return inputs
    return {key: bounded(value) for key, value in inputs.items()}


# attempts --------------------------------------------------------------------------------------

def call_action(action: Action, ctx: ActionContext,
                inputs: dict[str, Any]) -> tuple[Any, ActionError | None]:
    """Call the action and check its output: (output, None), or (None, the error as an
    ActionError). Runs on a pool thread; a plugin bug fails the step, never the run."""
    try:
        output = action.func(ctx, inputs)
        if not isinstance(output, Waiting):
            action.validate_output(output)
        return output, None
    except ActionError as exc:
        return None, exc
    except ConfigError as exc:
        return None, ActionError(f"{action.name}: {exc}")
    except Exception as exc:
        log.debug("action %s raised", action.name, exc_info=True)
        return None, ActionError(
            f"{action.name} failed unexpectedly: {type(exc).__name__}: {exc}")


def pending_backoffs(events: list[dict[str, Any]],
                      now: datetime) -> dict[tuple[str, int | None], float]:
    """Retries that were waiting (backoff, Retry-After) when the process died: the monotonic
    time before which each must not start again, so a resume never retries early."""
    waits: dict[tuple[str, int | None], datetime] = {}
    for event in events:
        key = (event.get("step", ""), event.get("item"))
        if event.get("type") == EventType.STEP_STARTED:
            waits.pop(key, None)
        elif event.get("type") == EventType.ATTEMPT_FAILED and event.get("retry_in") is not None:
            at = datetime.fromisoformat(str(event["at"]).replace("Z", "+00:00"))
            waits[key] = at + timedelta(seconds=float(event["retry_in"]))
    base = time.monotonic()
    return {key: base + (due - now).total_seconds() for key, due in waits.items() if due > now}


def settled_waits(conductor: Conductor, answers: dict[str, dict[str, Any]], now: datetime,
                  redactor: Redactor) -> list[dict[str, Any]]:
    """The events that end the run's waits on resume: an answer in `answers` (`{step:
    {decision, by, comment, at}}`) approves or rejects its step; a wait that expired with none
    fails its step."""
    events: list[dict[str, Any]] = []
    for step_id, state in conductor.steps.items():
        if state.status != StepStatus.WAITING:
            continue
        answer = answers.get(step_id)
        if answer is not None:
            if answer.get("decision") == ApprovalDecision.APPROVE:
                events.append({"type": EventType.STEP_SUCCEEDED, "step": step_id,
                               "output": redactor.redact_value(dict(answer))})
            else:
                comment = f": {answer['comment']}" if answer.get("comment") else ""
                events.append({"type": EventType.STEP_FAILED, "step": step_id,
                               "error": redactor.redact(
                                   f"rejected by {answer.get('by', 'someone')}{comment}")})
            continue
        expires = (state.waiting or {}).get("expires_at")
        if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
            events.append({"type": EventType.STEP_FAILED, "step": step_id,
                           "error": f"no answer before {expires}"})
    return events


@dataclass(frozen=True)
class Retry:
    """What becomes of a failed attempt: retried after `delay` seconds, or not (None)."""

    delay: float | None
    message: str  # the error, redacted, with why a wanted retry cannot happen


def retry_after_failure(work: StepWork, attempt: Attempt, error: ActionError,
                        redactor: Redactor, rng: random.Random) -> Retry:
    """The step's retry policy (else the action's, else none) applied to a failed attempt."""
    message = redactor.redact(str(error))
    policy = work.step.retry or work.action.retry or NO_RETRY
    retry = error.retryable and attempt.attempt < policy.max_attempts and work.error is None
    delay = policy.delay(attempt.attempt, rng.random(), error.retry_after) if retry else None
    if retry and delay is None:
        message += (f" (the vendor asked to wait {error.retry_after:g}s, longer than "
                    f"max_backoff_seconds {policy.max_backoff_seconds:g}s)")
    return Retry(delay, message)
