"""The runner's fast paths for a run with no journal give what the plain paths give."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import crownguard.engine.execution as execution_module
import crownguard.engine.finishing as finishing_module
from crownguard.engine import ActionError, Waiting, action, hookimpl
from crownguard.engine.actions import ActionContext, idempotency_key
from crownguard.engine.conductor import Conductor
from crownguard.engine.config import Connections
from crownguard.engine.errors import ExpressionError, InputError, SpecError
from crownguard.engine.expressions import render, renderer
from crownguard.engine.journal.base import utc_now
from crownguard.engine.kinds import EventType
from crownguard.engine.outbox import event_time
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import Step, parse_playbook
from crownguard.engine.steps import JOURNAL_VALUE_BYTES, _input_renderer, render_markup
from crownguard.engine.validation import _validator

BIG = "x" * (JOURNAL_VALUE_BYTES + 10)


class Big:
    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        register(action("big.output", inline=True)(lambda ctx, inputs: {"text": BIG}))


@pytest.fixture
def host() -> PluginHost:
    h = PluginHost()
    h.add("crownguard.plugins.core", "core")
    h.add(Big(), "big")
    return h


# event_time: utc_now's text, formatted once a second ------------------------------------------

@given(st.integers(0, 2**62))
def test_event_time_spells_a_time_as_utc_now_does(ns: int) -> None:
    seconds, rest = divmod(ns, 1_000_000_000)
    at = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    expected = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if at.year < 10000:
        assert event_time(ns) == expected


def test_event_time_of_now_falls_between_two_utc_nows() -> None:
    for _ in range(1000):
        before = utc_now()
        now = event_time()
        after = utc_now()
        assert len(now) == len(before) and before <= now <= after


# decide(skip): the steps the runner started are left out, the rest decided as before ----------

FAN = """
name: fan
steps:
  - {id: a, action: core.noop}
  - {id: b, action: core.noop, if: "event.go"}
  - {id: c, action: core.noop}
  - {id: d, action: core.noop, needs: [a]}
"""


@given(st.sets(st.sampled_from("abcd")), st.booleans())
def test_decide_skip_leaves_out_only_the_steps_named(skip: set[str], go: bool) -> None:
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    playbook = parse_playbook(FAN, host.actions)
    conductor = Conductor(playbook, {"event": {"go": go}})
    assert conductor.decide(skip) == [d for d in conductor.decide() if d.step not in skip]


# what is stored is built only when something reads it -----------------------------------------

PLAYBOOK = """
name: big
steps:
  - {id: s, action: big.output}
"""


def _count_journaled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    plain = finishing_module.journaled_output

    def counted(*args: Any) -> Any:
        calls.append(1)
        return plain(*args)

    monkeypatch.setattr(finishing_module, "journaled_output", counted)
    return calls


def test_no_journal_and_no_observer_builds_no_stored_form(
        host: PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_journaled(monkeypatch)
    record = Runner(host).run(parse_playbook(PLAYBOOK, host.actions), {})
    assert record["steps"]["s"]["output"] == {"text": BIG}
    assert calls == []


def test_an_observer_sees_events_as_stored(host: PluginHost,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_journaled(monkeypatch)
    seen: list[dict[str, Any]] = []
    record = Runner(host, on_event=seen.append).run(parse_playbook(PLAYBOOK, host.actions), {})
    assert record["steps"]["s"]["output"] == {"text": BIG}  # the run goes on with it whole
    [done] = [e for e in seen if e["type"] == EventType.STEP_SUCCEEDED]
    assert done["output"]["truncated"] is True and calls == [1]


def test_a_journal_callable_gets_events_as_stored(host: PluginHost) -> None:
    stored: list[dict[str, Any]] = []
    Runner(host, journal=stored.append).run(parse_playbook(PLAYBOOK, host.actions), {})
    [done] = [e for e in stored if e["type"] == EventType.STEP_SUCCEEDED]
    assert done["output"]["truncated"] is True


# the step's logger, looked up once per step id ---------------------------------------------------

def test_an_action_gets_its_steps_logger() -> None:
    seen: list[logging.Logger] = []

    def log_me(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        seen.append(ctx.log)
        return {}

    class Logs:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(action("logs.me", inline=True)(log_me))

    host = PluginHost()
    host.add(Logs(), "logs")
    text = "name: l\nsteps:\n  - {id: first, action: logs.me}\n  - {id: again, action: logs.me}\n"
    for _ in range(2):
        Runner(host).run(parse_playbook(text, host.actions), {})
    assert seen == [logging.getLogger(f"crownguard.step.{s}") for s in ("first", "again") * 2]


# inline attempts share a `cancelled` event while nothing sets it ---------------------------------

def test_an_inline_step_never_sees_another_ones_cancelled_event() -> None:
    seen: list[bool] = []

    def cancel_self(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        seen.append(ctx.cancelled.is_set())
        ctx.cancelled.set()
        return {}

    class Cancels:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(action("cancels.self", inline=True)(cancel_self))

    host = PluginHost()
    host.add(Cancels(), "cancels")
    text = ("name: c\nsteps:\n  - {id: a, action: cancels.self}\n"
            "  - {id: z, action: cancels.self}\n"
            "  - {id: b, action: cancels.self, needs: [a]}\n"
            "  - {id: c, action: cancels.self, for_each: [1, 2, 3], needs: [b]}\n")
    record = Runner(host).run(parse_playbook(text, host.actions), {})
    assert record["status"] == "succeeded" and seen == [False] * 6


# the loop does not wait when a result is in, and still fails a step at its deadline -------------

def test_a_timeout_fires_while_inline_results_keep_the_loop_busy() -> None:
    release = threading.Event()
    ticks: list[float] = []

    def slow(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return {}

    def tick(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        ticks.append(time.monotonic())
        time.sleep(0.002)  # on the loop: 200 of them outlast the slow step's timeout
        return {}

    class Clock:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(action("clock.slow")(slow))
            register(action("clock.tick", inline=True)(tick))

    host = PluginHost()
    host.add(Clock(), "clock")
    steps = [{"id": "slow", "action": "clock.slow", "timeout_seconds": 0.1}] + [
        {"id": f"t{i}", "action": "clock.tick", **({"needs": [f"t{i - 1}"]} if i else {})}
        for i in range(200)]
    try:
        started = time.monotonic()
        record = Runner(host).run(parse_playbook(yaml.safe_dump(
            {"name": "busy", "steps": steps}), host.actions), {})
    finally:
        release.set()
    assert record["steps"]["slow"]["status"] == "failed"
    assert "did not finish within 0.1s" in record["steps"]["slow"]["error"]
    assert len(ticks) == 200 and time.monotonic() - started < 10
    # at its deadline, not once the loop ran out of results to collect
    assert record["steps"]["slow"]["finished_at"] < record["steps"]["t150"]["started_at"]


# the conductor's expression view: built once per finishing event, always the state's ---------

OUTCOMES = st.sampled_from(["succeeded", "failed", "skipped", "started-succeeded",
                            "started-failed", "started-waiting-failed"])


@given(st.lists(st.tuples(st.sampled_from("abcd"), OUTCOMES,
                          st.none() | st.integers() | st.text(max_size=3)), max_size=8))
def test_the_view_of_every_step_is_its_state(plan: list[tuple[str, str, Any]]) -> None:
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    conductor = Conductor(parse_playbook(FAN, host.actions), {"event": {}})
    kinds = {"started": "step_started", "waiting": "step_waiting", "succeeded": "step_succeeded",
             "failed": "step_failed", "skipped": "step_skipped"}
    for step, outcome, value in plan:
        if conductor.steps[step].status != "pending":
            continue
        for part in outcome.split("-"):
            conductor.apply({"type": kinds[part], "step": step, "at": "t", "output": value,
                             "error": None if part == "succeeded" else f"e{value}",
                             "reason": "r"})
            assert conductor.context()["steps"] == {
                sid: {"status": str(s.status), "output": s.output, "error": s.error}
                for sid, s in conductor.steps.items()}


# a step's inputs, compiled once: what render() gives, the same error first ----------------------

TEMPLATES = st.sampled_from([
    "plain", "${{ a }}", "${{ a.b }}", "x ${{ a }} y", "${{ a }}${{ b }}", "${{ missing }}",
    "${{ length(a) }}", "${{ from_json(b) }}", "${{ a | b", "${{ }}", "${{ a[ }}", "}}"])
VALUES = st.recursive(
    st.none() | st.integers(-2, 2) | st.booleans() | TEMPLATES,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3), max_leaves=8)
CONTEXTS = st.fixed_dictionaries({
    "a": st.none() | st.integers(-2, 2) | st.text(max_size=3) | st.lists(st.integers(), max_size=2)
    | st.fixed_dictionaries({"b": st.integers(0, 3)}),
    "b": st.sampled_from(["1", "[1]", "{", "x", ""])})


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        return "ok", run()
    except ExpressionError as exc:
        return "error", str(exc)


@given(VALUES, CONTEXTS)
def test_a_compiled_value_renders_as_render_does(value: Any, context: dict[str, Any]) -> None:
    try:
        bound = renderer(value)
    except ExpressionError:
        return  # the step's inputs then go through render() itself (the next test)
    assert _outcome(lambda: bound(context)) == _outcome(lambda: render(value, context))


@given(st.dictionaries(st.sampled_from(["x", "y", "z", "text"]), VALUES, max_size=4),
       CONTEXTS, st.booleans())
def test_a_steps_inputs_render_as_one_by_one(with_: dict[str, Any], context: dict[str, Any],
                                             markup: bool) -> None:
    step = Step(id="s", action="t.a", with_=with_)
    keys = ("text",) if markup else ()

    def one_by_one() -> dict[str, Any]:
        return {key: render_markup(value, context) if key in keys else render(value, context)
                for key, value in with_.items()}

    def compiled() -> dict[str, Any]:
        run = _input_renderer(step, keys)
        return run(context) if run is not None else one_by_one()

    assert _outcome(compiled) == _outcome(one_by_one)
    assert _input_renderer(step, keys) is _input_renderer(step, keys)


@given(st.none() | st.integers() | st.text(max_size=2) | st.lists(st.integers(), max_size=2)
       | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
def test_an_any_object_schema_checks_as_its_validator_does(value: Any) -> None:
    plain = action("t.plain", input_schema={"type": "object"},
                   output_schema={"type": "object"})(lambda ctx, inputs: {})
    full = _validator({"type": "object", "title": "not the fast path"})
    for check in (plain.validate_inputs, plain.validate_output):
        try:
            check(value)
            outcome = "valid"
        except InputError:
            outcome = "invalid"
        assert outcome == ("valid" if full.is_valid(value) else "invalid")


# what an inline call does not use is made on first use, the same --------------------------------

def test_an_action_context_makes_its_key_and_event_on_first_use() -> None:
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, connections=Connections({}),
                        item_index=2)
    assert ctx.idempotency_key == idempotency_key("r", "s", 2)
    assert ctx.cancelled is ctx.cancelled and not ctx.cancelled.is_set()
    given_one = threading.Event()
    ctx = ActionContext(run_id="r", step_id="s", attempt=1, connections=Connections({}),
                        idempotency_key="k", cancelled=given_one)
    assert ctx.idempotency_key == "k" and ctx.cancelled is given_one


# a step run alone (inline, nothing else in flight) gives what the loop's rounds give -------------

class Chain:
    """Inline actions that succeed, fail, fail once (retryable), wait or read their context
    (none on a thread: what a thread's call overlaps is timing, in either path); observers
    of every step hook."""

    def __init__(self) -> None:
        self.tries: dict[tuple[str, str], int] = {}
        self.seen: list[tuple[Any, ...]] = []

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        def flaky(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
            key = (ctx.run_id, ctx.step_id)
            self.tries[key] = self.tries.get(key, 0) + 1
            if self.tries[key] == 1:
                raise ActionError("once", retryable=True)
            return {"tries": self.tries[key]}

        def fail(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
            raise ActionError(f"no: {inputs}")

        def status(ctx: Any, inputs: dict[str, Any]) -> dict[str, Any]:
            return {s: v["status"] for s, v in ctx.run_context["steps"].items()}

        register(action("chain.ok", inline=True)(lambda ctx, inputs: dict(inputs)))
        register(action("chain.fail", inline=True)(fail))
        register(action("chain.flaky", inline=True)(flaky))
        register(action("chain.wait", inline=True)(lambda ctx, inputs: Waiting("ask", 60)))
        register(action("chain.status", inline=True)(status))
        register(action("chain.strict", inline=True, input_schema={
            "type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}})(
                lambda ctx, inputs: {}))

    @hookimpl
    def crownguard_step_started(self, run_id: str, step_id: str, attempt: int,
                                inputs: dict[str, Any]) -> None:
        self.seen.append(("started", step_id, attempt, inputs))

    @hookimpl
    def crownguard_step_finished(self, run_id: str, step_id: str,
                                 result: dict[str, Any]) -> None:
        self.seen.append(("finished", step_id, _untimed(result)))


def _untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items()
                if k not in ("at", "started_at", "finished_at", "queued_seconds", "expires_at")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


STEP = st.fixed_dictionaries({
    "action": st.sampled_from(["chain.ok", "chain.fail", "chain.flaky", "chain.wait",
                               "chain.status", "chain.strict"]),
    "with": st.sampled_from([{}, {"n": "${{ event.n }}"}, {"n": "${{ length(event.n) }}"},
                             {"n": "x ${{ event.n }}"}]),
    "when": st.sampled_from(["success", "failure", "always"]),
    "if": st.sampled_from([None, "event.go", "!(event.go)"]),
    # Due at once: which retries a round starts does not hang on the clock.
    "retry": st.sampled_from([None, {"max_attempts": 2, "backoff_seconds": 0}]),
    "for_each": st.sampled_from([None, [1, 2]]),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(STEP, st.sets(st.integers(0, 5), max_size=2)), min_size=1,
                max_size=6), st.booleans())
def test_a_step_run_alone_gives_what_the_loops_rounds_give(
        steps: list[tuple[dict[str, Any], set[int]]], go: bool) -> None:
    spec = []
    for i, (step, needs) in enumerate(steps):
        entry: dict[str, Any] = {"id": f"s{i}", "action": step["action"], "with": step["with"],
                                 "needs": [f"s{n}" for n in sorted(needs) if n < i]}
        if entry["needs"]:
            entry["when"] = step["when"]
        for key in ("if", "retry", "for_each"):
            if step[key] is not None:
                entry[key] = step[key]
        spec.append(entry)
    text = yaml.safe_dump({"name": "chain", "steps": spec})
    host = PluginHost()
    host.add(Chain(), "chain")
    try:
        parse_playbook(text, host.actions)
    except SpecError:
        assume(False)  # a strict step with no `n`: refused before any run

    def run(alone: bool, journaled: bool = True) -> tuple[Any, ...]:
        chain = Chain()
        host = PluginHost()
        host.add(chain, "chain")
        playbook = parse_playbook(text, host.actions)
        events: list[dict[str, Any]] = []
        plain = execution_module.Execution._run_alone
        try:
            if not alone:
                execution_module.Execution._run_alone = lambda self, decision: False
            record = Runner(host, journal=events.append if journaled else None, seed=7).run(
                playbook, {"n": 3, "go": go}, run_id="r1")
        finally:
            execution_module.Execution._run_alone = plain
        return _untimed(record), _untimed(events), chain.seen

    loop = run(False)
    assert run(True) == loop
    # With nothing reading its events, a step's start and success reach the conductor
    # without one (Conductor.started, .succeeded): the same record, the same hooks.
    record, _, seen = run(True, journaled=False)
    assert (record, seen) == (loop[0], loop[2])
