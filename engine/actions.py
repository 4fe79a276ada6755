"""Actions: what a step calls. An Action is a function with typed inputs and outputs.

    @action("falcon.contain_host", input_schema={...}, output_schema={...},
            side_effect=True, undo="falcon.lift_containment", connection="falcon")
    def contain_host(ctx: ActionContext, inputs: dict) -> dict: ...

Plugins register actions through `crownguard_register_actions(register)`.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import jsonschema

from .errors import ActionError, InputError, StepTimeout
from .validation import about_unknown, describe_schema_error, schema_errors

if TYPE_CHECKING:
    from .config import Connection, Connections
    from .http import VendorClient

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
ANY_OBJECT: dict[str, Any] = {"type": "object"}

ClientT = TypeVar("ClientT", bound="VendorClient")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a step is tried again after a retryable error."""

    max_attempts: int = 1
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0

    def delay(self, attempt: int, jitter: float,
              retry_after: float | None = None) -> float | None:
        """Wait before attempt `attempt + 1`; jitter in [0, 1) spreads it over [50%, 100%].

        Never shorter than the vendor's Retry-After; None (give up now) when the vendor asks
        for a longer wait than max_backoff_seconds, rather than stalling the run.
        """
        base = min(self.backoff_seconds * (2 ** (attempt - 1)), self.max_backoff_seconds)
        wait = base * (0.5 + jitter / 2)
        if retry_after is not None:
            if retry_after > self.max_backoff_seconds:
                return None
            wait = max(wait, retry_after)
        return wait

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> RetryPolicy | None:
        if not spec:
            return None
        return cls(max_attempts=int(spec.get("max_attempts", 1)),
                   backoff_seconds=float(spec.get("backoff_seconds", 1.0)),
                   max_backoff_seconds=float(spec.get("max_backoff_seconds", 300.0)))


ActionFunc = Callable[["ActionContext", dict[str, Any]], Any]


# The retry policy of vendor actions that declare none of their own: three calls, a second
# apart at first (doubling, with jitter, and never sooner than a vendor's Retry-After).
VENDOR_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=1)


@dataclass(frozen=True)
class Waiting:
    """Returned by an action to suspend its step until a person answers (an approval, a
    justification). The run is persisted as `waiting`; `crownguard approve` (or a parsed chat
    interaction) resumes it. `timeout_seconds` bounds the wait: at expiry the step fails, so
    `when: failure` paths can escalate. `data` is kept with the wait (who may answer...)."""

    reason: str
    timeout_seconds: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """A named operation a step can call, with its contract."""

    name: str
    func: ActionFunc
    description: str
    input_schema: dict[str, Any] = field(default_factory=lambda: dict(ANY_OBJECT))
    output_schema: dict[str, Any] = field(default_factory=lambda: dict(ANY_OBJECT))
    side_effect: bool = False
    undo: str | None = None
    # How the undo action's inputs come from this step: templates over {inputs, output}
    # (`{"issue": "${{ output.key }}"}`). Without it, each undo input is taken from the step's
    # inputs, else its output, by name.
    undo_with: dict[str, Any] | None = None
    connection: str | None = None
    retry: RetryPolicy | None = None
    plugin: str = ""
    # Pure, non-blocking actions (no I/O) may run on the scheduler's own thread: no thread
    # hand-off, but also no timeout enforcement, so never for anything that can block.
    inline: bool = False
    # The journal keeps a large output (over steps.JOURNAL_VALUE_BYTES) by digest and size;
    # an action whose full output must be journaled says so. One that names an undo always
    # does: undo reads its inputs and output back from the journal.
    keep_output: bool = False
    # Inputs whose text is markup (Markdown, mrkdwn...): a value a step interpolates into one
    # is quoted (engine/markup.py) and the plugin unquotes it as literal text.
    markup: tuple[str, ...] = ()

    @cached_property
    def _any_object_input(self) -> bool:
        """Whether the input schema is `{"type": "object"}`: every dict is valid (what the
        cached validator, validation._AnyObject, tests), with no call to find that out."""
        return self.input_schema == ANY_OBJECT

    @cached_property
    def _any_object_output(self) -> bool:
        return self.output_schema == ANY_OBJECT

    @property
    def keeps_output(self) -> bool:
        return self.keep_output or self.undo is not None

    @property
    def summary(self) -> str:
        return self.description.strip().splitlines()[0] if self.description.strip() else ""

    def validate_inputs(self, inputs: dict[str, Any], *,
                        unknown: Collection[Sequence[str | int]] = ()) -> None:
        """Raise InputError unless the inputs match the schema. `unknown` lists paths (keys
        and indexes from the top) of values that are not known yet (a dry run's values taken
        from steps it did not call): problems at or under them are not the inputs' fault."""
        if self._any_object_input and isinstance(inputs, dict):
            return
        errors = schema_errors(self.input_schema, inputs)
        if unknown:
            errors = [e for e in errors if not about_unknown(e, unknown)]
        _raise_for(errors, f"{self.name}: input")

    def validate_output(self, output: Any) -> None:
        if self._any_object_output and isinstance(output, dict):
            return
        _validate(self.output_schema, output, f"{self.name}: output")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "plugin": self.plugin, "description": self.description.strip(),
                "side_effect": self.side_effect, "undo": self.undo,
                "undo_with": self.undo_with,
                "connection": self.connection, "keep_output": self.keeps_output,
                "markup": list(self.markup),
                "retry": None if self.retry is None else {
                    "max_attempts": self.retry.max_attempts,
                    "backoff_seconds": self.retry.backoff_seconds},
                "input_schema": self.input_schema, "output_schema": self.output_schema}


def _validate(schema: dict[str, Any], value: Any, what: str) -> None:
    _raise_for(schema_errors(schema, value), what)


def _raise_for(errors: list[jsonschema.ValidationError], what: str) -> None:
    if errors:
        details = "; ".join(describe_schema_error(e) for e in errors[:5])
        raise InputError(f"{what} does not match its schema: {details}")


def action(name: str, *, input_schema: dict[str, Any] | None = None,
           output_schema: dict[str, Any] | None = None, description: str | None = None,
           side_effect: bool = False, undo: str | None = None,
           undo_with: dict[str, Any] | None = None, connection: str | None = None,
           retry: RetryPolicy | None = None, inline: bool = False,
           keep_output: bool = False,
           markup: tuple[str, ...] = ()) -> Callable[[ActionFunc], Action]:
    """Decorator turning `func(ctx, inputs) -> output` into an Action (description: docstring)."""

    def wrap(func: ActionFunc) -> Action:
        text = description or inspect.cleandoc(func.__doc__ or "")
        return Action(name=name, func=func, description=text,
                      input_schema=input_schema or dict(ANY_OBJECT),
                      output_schema=output_schema or dict(ANY_OBJECT),
                      side_effect=side_effect, undo=undo, undo_with=undo_with,
                      connection=connection, retry=retry,
                      inline=inline, keep_output=keep_output, markup=tuple(markup))

    return wrap


def idempotency_key(run_id: str, step_id: str, item: int | None = None) -> str:
    """Stable for a step (and for_each item) across its retries and resumes of the run."""
    material = f"{run_id}\x1f{step_id}\x1f{'' if item is None else item}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def timeout_message(step_id: str, seconds: float | None) -> str:
    limit = f"{seconds:g}s" if seconds is not None else "its timeout"
    return f"step '{step_id}' did not finish within {limit}"


class ActionContext:
    """What an action gets besides its inputs: identity of the call, connections, deadline."""

    def __init__(self, *, run_id: str, step_id: str, attempt: int,
                 idempotency_key: str | None = None, connections: Connections,
                 deadline: float | None = None,
                 item_index: int | None = None, dry_run: bool = False,
                 cancelled: threading.Event | None = None, logger: logging.Logger | None = None,
                 run_context: dict[str, Any] | None = None,
                 timeout_seconds: float | None = None):
        self.run_id = run_id
        self.step_id = step_id
        self.attempt = attempt
        self._idempotency_key = idempotency_key
        self.connections = connections
        self.deadline = deadline
        self.item_index = item_index
        self.dry_run = dry_run
        self._cancelled = cancelled
        self.log = logger or logging.getLogger(f"crownguard.step.{step_id}")
        self.run_context = run_context or {}
        self.timeout_seconds = timeout_seconds

    @property
    def idempotency_key(self) -> str:
        """The one given, else the run's for this step and item (made on first use: most
        calls never send one)."""
        if self._idempotency_key is None:
            self._idempotency_key = idempotency_key(self.run_id, self.step_id, self.item_index)
        return self._idempotency_key

    @property
    def cancelled(self) -> threading.Event:
        """Set when the step timed out. Made on first use when the runner gave none (an inline
        call, which no timeout interrupts): a threading.Event costs more than the rest of
        the context."""
        if self._cancelled is None:
            self._cancelled = threading.Event()
        return self._cancelled

    def remaining(self) -> float | None:
        """Seconds left before the step's timeout, or None when it has none."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check_deadline(self) -> None:
        if self.cancelled.is_set() or (self.deadline is not None
                                       and time.monotonic() >= self.deadline):
            raise StepTimeout(timeout_message(self.step_id, self.timeout_seconds))

    def sleep(self, seconds: float) -> None:
        """Wait (while polling a vendor), ending early with StepTimeout at the deadline."""
        remaining = self.remaining()
        if remaining is not None and remaining < seconds:
            self.cancelled.wait(remaining)
            self.check_deadline()
        if self.cancelled.wait(seconds):
            self.check_deadline()

    def poll(self, probe: Callable[[], T | None], *, interval: float, max_wait: float,
             waiting_for: str, vendor: str) -> T:
        """Call `probe` until it returns something other than None, sleeping `interval`
        between calls: how an action waits for a vendor's asynchronous work.

        The step's timeout ends the wait (StepTimeout); `max_wait` bounds steps that have
        none, so an operation stuck at the vendor cannot hold a run forever (a retryable
        ActionError then).
        """
        started = time.monotonic()
        while True:
            result = probe()
            if result is not None:
                return result
            if time.monotonic() - started >= max_wait:
                raise ActionError(f"{vendor}: still waiting for {waiting_for} after "
                                  f"{max_wait:g}s", retryable=True)
            self.sleep(interval)

    def connection(self, name: str) -> Connection:
        return self.connections.get(name)

    def client(self, client_class: type[ClientT], connection: str | None = None) -> ClientT:
        """A vendor client bound to this call (its deadline and idempotency key)."""
        conn = self.connections.get(connection or client_class.connection_type)
        return client_class(conn, self)
