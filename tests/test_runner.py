from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from crownguard.engine import (
    ActionContext,
    ActionError,
    ConflictError,
    RateLimited,
    RetryPolicy,
    ServerError,
    action,
    hookimpl,
)
from crownguard.engine.actions import idempotency_key
from crownguard.engine.conductor import Conductor
from crownguard.engine.outcome import OUTCOME_FIELDS
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook


class Probe:
    """A test plugin whose actions record calls and misbehave on request."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.keys: dict[str, set[str]] = {}
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.failures: dict[str, list[ActionError]] = {}
        self.barrier: threading.Barrier | None = None
        self.events: list[tuple[str, str]] = []

    def _enter(self, ctx: ActionContext, inputs: dict[str, Any]) -> str:
        name = inputs.get("name", ctx.step_id)
        with self.lock:
            self.calls[name] += 1
            self.keys.setdefault(name, set()).add(ctx.idempotency_key)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        return name

    def _leave(self) -> None:
        with self.lock:
            self.running -= 1

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        probe = self

        @action("probe.work", input_schema={"type": "object", "properties": {
            "name": {"type": "string"}, "sleep": {"type": "number"}, "value": {},
            "bad_output": {"type": "boolean"}, "crash": {"type": "boolean"},
            "wait": {"type": "boolean"}}, "additionalProperties": False},
            output_schema={"type": "object", "required": ["value"]})
        def work(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            name = probe._enter(ctx, inputs)
            try:
                if inputs.get("wait") and probe.barrier is not None:
                    probe.barrier.wait(timeout=10)
                if inputs.get("sleep"):
                    ctx.sleep(inputs["sleep"])
                pending = probe.failures.get(name)
                if pending:
                    raise pending.pop(0)
                if inputs.get("crash"):
                    raise KeyError("boom")
                if inputs.get("bad_output"):
                    return {"nope": 1}
                return {"value": inputs.get("value", name)}
            finally:
                probe._leave()

        register(work)

        @action("probe.default_retry", retry=RetryPolicy(max_attempts=3, backoff_seconds=0.01))
        def default_retry(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            name = probe._enter(ctx, {"name": ctx.step_id})
            probe._leave()
            pending = probe.failures.get(name)
            if pending:
                raise pending.pop(0)
            return {}

        register(default_retry)

    @hookimpl
    def crownguard_step_started(self, run_id: str, step_id: str, attempt: int,
                                inputs: dict[str, Any]) -> None:
        self.events.append(("started", step_id))

    @hookimpl
    def crownguard_step_finished(self, run_id: str, step_id: str, result: dict[str, Any]) -> None:
        self.events.append(("finished", step_id))


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def host(probe: Probe) -> PluginHost:
    h = PluginHost()
    h.add("crownguard.plugins.core", "core")
    h.add(probe, "probe")
    return h


def run(host: PluginHost, text: str, event: dict[str, Any] | None = None,
        **kwargs: Any) -> dict[str, Any]:
    journal = kwargs.pop("journal", None)
    runner = Runner(host, journal=journal, seed=1, max_concurrency=kwargs.pop("max_concurrency",
                                                                               None))
    return runner.run(parse_playbook(text, host.actions), event or {}, **kwargs)


def test_record_has_exactly_the_documented_shape(host: PluginHost) -> None:
    record = run(host, "name: r\nsteps:\n  - {id: a, action: probe.work}\n")
    # DESIGN.md's fields, then the outcome fields (docs/playbooks.md, "The run record").
    assert set(record) == {"run_id", "playbook", "status", "steps", *OUTCOME_FIELDS}
    assert record["status"] == "succeeded" and record["playbook"] == "r"
    assert record["outcome"] == "succeeded" and record["degraded"] is False
    assert record["handled_failures"] == record["rejected_approvals"] == []
    assert set(record["steps"]["a"]) == {"status", "output", "error", "attempts", "started_at",
                                         "finished_at", "queued_seconds"}
    step = record["steps"]["a"]
    assert step["output"] == {"value": "a"} and step["attempts"] == 1 and step["error"] is None
    assert step["started_at"] <= step["finished_at"]


def test_independent_steps_run_together(host: PluginHost, probe: Probe) -> None:
    probe.barrier = threading.Barrier(3)
    record = run(host, """
name: par
steps:
  - {id: a, action: probe.work, with: {wait: true}}
  - {id: b, action: probe.work, with: {wait: true}}
  - {id: c, action: probe.work, with: {wait: true}}
  - {id: d, action: probe.work, needs: [a, b, c], with: {value: "${{ steps.a.output.value }}"}}
""")
    # The barrier only opens when all three are in flight at once.
    assert record["status"] == "succeeded", record
    assert record["steps"]["d"]["output"] == {"value": "a"}


def test_when_and_skip_propagation(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [ConflictError("no", vendor="v", operation="op", status=409)]
    record = run(host, """
name: w
steps:
  - {id: a, action: probe.work}
  - {id: on_success, action: probe.work, needs: [a]}
  - {id: after_skip, action: probe.work, needs: [on_success]}
  - {id: on_failure, action: probe.work, needs: [a], when: failure}
  - {id: finally, action: probe.work, needs: [a, on_success], when: always}
  - {id: failure_unneeded, action: probe.work, needs: [finally], when: failure}
""")
    steps = {k: v["status"] for k, v in record["steps"].items()}
    assert steps == {"a": "failed", "on_success": "skipped", "after_skip": "skipped",
                     "on_failure": "succeeded", "finally": "succeeded",
                     "failure_unneeded": "skipped"}
    assert "v op (HTTP 409): no" in record["steps"]["a"]["error"]
    # The failure was handled by a `when: failure` step, so the run succeeded.
    assert record["status"] == "succeeded"
    assert record["steps"]["a"]["attempts"] == 1  # 4xx is never retried


def test_unhandled_failure_fails_the_run(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [ActionError("broken")]
    record = run(host, """
name: f
steps:
  - {id: a, action: probe.work}
  - {id: b, action: probe.work, needs: [a], when: always}
""")
    assert record["status"] == "failed"
    assert record["steps"]["b"]["status"] == "succeeded"


def test_if_skips_and_sees_outputs(host: PluginHost, probe: Probe) -> None:
    record = run(host, """
name: cond
steps:
  - {id: a, action: probe.work, with: {value: 5}}
  - {id: big, action: probe.work, needs: [a], if: "steps.a.output.value > `3`"}
  - {id: small, action: probe.work, needs: [a], if: "steps.a.output.value < `3`"}
  - {id: departing, action: probe.work, if: "!(event.actor.departing)"}
""", {"actor": {"departing": True}})
    assert record["steps"]["big"]["status"] == "succeeded"
    assert record["steps"]["small"]["status"] == "skipped"
    assert record["steps"]["departing"]["status"] == "skipped"
    assert probe.calls["small"] == 0


def test_retry_with_backoff_and_retry_after(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [RateLimited("slow down", vendor="v", operation="op", status=429,
                                       retry_after=0.05),
                           ServerError("oops", vendor="v", operation="op", status=503)]
    events: list[dict[str, Any]] = []
    record = run(host, """
name: retry
steps:
  - {id: a, action: probe.work, retry: {max_attempts: 3, backoff_seconds: 0.001}}
""", journal=events.append)
    assert record["status"] == "succeeded" and record["steps"]["a"]["attempts"] == 3
    failed = [e for e in events if e["type"] == "attempt_failed"]
    assert failed[0]["retry_in"] >= 0.05  # honours Retry-After over a shorter backoff
    assert failed[1]["retry_in"] < 0.05
    assert len(probe.keys["a"]) == 1  # one idempotency key across the retries


def test_retries_exhausted_and_non_retryable(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [ServerError("x", vendor="v", operation="op", status=500)] * 5
    probe.failures["b"] = [ConflictError("bad request", vendor="v", operation="op", status=400)]
    record = run(host, """
name: exhaust
steps:
  - {id: a, action: probe.work, retry: {max_attempts: 3, backoff_seconds: 0.001}}
  - {id: b, action: probe.work, retry: {max_attempts: 3, backoff_seconds: 0.001}}
""")
    assert record["steps"]["a"]["attempts"] == 3 and record["steps"]["a"]["status"] == "failed"
    assert record["steps"]["b"]["attempts"] == 1


def test_action_default_retry_policy(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [ServerError("x", vendor="v", operation="op", status=502)]
    record = run(host, "name: d\nsteps:\n  - {id: a, action: probe.default_retry}\n")
    assert record["steps"]["a"]["attempts"] == 2 and record["status"] == "succeeded"


def test_timeout_fails_the_attempt_and_is_retryable(host: PluginHost, probe: Probe) -> None:
    record = run(host, """
name: t
steps:
  - id: a
    action: probe.work
    timeout_seconds: 0.05
    retry: {max_attempts: 2, backoff_seconds: 0.001}
    with: {sleep: 5}
""")
    step = record["steps"]["a"]
    assert step["status"] == "failed" and step["attempts"] == 2
    assert "did not finish within 0.05s" in step["error"]


def test_for_each_fans_out_with_its_own_bound(host: PluginHost, probe: Probe) -> None:
    record = run(host, """
name: fe
steps:
  - id: each
    action: probe.work
    for_each: "${{ event.hosts }}"
    concurrency: 2
    with: {name: "h", value: "${{ item.id }}", sleep: 0.02}
""", {"hosts": [{"id": i} for i in range(6)]})
    assert record["steps"]["each"]["output"] == [{"value": i} for i in range(6)]
    assert record["steps"]["each"]["attempts"] == 6
    assert probe.max_running <= 2
    assert len(probe.keys["h"]) == 6  # one key per item


def test_for_each_item_failure_fails_the_step(host: PluginHost, probe: Probe) -> None:
    record = run(host, """
name: fe2
steps:
  - id: each
    action: probe.work
    for_each: [1, 2, "x"]
    with: {value: "${{ item }}", crash: "${{ item == 'x' }}"}
  - {id: empty, action: probe.work, for_each: "${{ event.none || `[]` }}"}
""")
    assert record["steps"]["each"]["status"] == "failed"
    assert "item 2: probe.work failed unexpectedly: KeyError" in record["steps"]["each"]["error"]
    assert record["steps"]["empty"]["output"] == []


def test_input_and_output_schemas_are_enforced(host: PluginHost, probe: Probe) -> None:
    record = run(host, """
name: schemas
steps:
  - {id: bad_in, action: probe.work, with: {name: "${{ event.n }}"}}
  - {id: bad_out, action: probe.work, with: {bad_output: true}}
  - {id: bad_expr, action: probe.work, with: {value: "${{ lower(event.n) }}"}}
  - {id: bad_each, action: probe.work, for_each: "${{ event.n }}"}
""", {"n": 5})
    assert "input does not match its schema: 'name': 5 is not of type 'string'" in \
        record["steps"]["bad_in"]["error"]
    assert probe.calls["bad_in"] == 0 and record["steps"]["bad_in"]["attempts"] == 0
    assert "output does not match its schema" in record["steps"]["bad_out"]["error"]
    assert "lower" in record["steps"]["bad_expr"]["error"]
    assert "for_each gave a number, not a list" in record["steps"]["bad_each"]["error"]


def test_plugin_crash_fails_step_not_run(host: PluginHost) -> None:
    record = run(host, """
name: crash
steps:
  - {id: a, action: probe.work, with: {crash: true}}
  - {id: b, action: probe.work}
""")
    assert record["steps"]["a"]["error"] == "probe.work failed unexpectedly: KeyError: 'boom'"
    assert record["steps"]["b"]["status"] == "succeeded"


def test_observers_are_called_and_a_failing_observer_is_harmless(
        host: PluginHost, probe: Probe, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @hookimpl
        def crownguard_run_finished(self, record: dict[str, Any]) -> None:
            raise RuntimeError("observer bug")

    host.add(Broken(), "broken")
    record = run(host, "name: o\nsteps:\n  - {id: a, action: probe.work}\n"
                       "  - {id: b, action: probe.work, needs: [a]}\n")
    assert record["status"] == "succeeded"
    assert probe.events == [("started", "a"), ("finished", "a"), ("started", "b"),
                            ("finished", "b")]
    assert "observer broken.crownguard_run_finished failed" in caplog.text


def test_events_replay_to_the_same_record(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [ServerError("x", vendor="v", operation="op", status=500)]
    events: list[dict[str, Any]] = []
    text = """
name: replay
steps:
  - {id: a, action: probe.work, retry: {max_attempts: 2, backoff_seconds: 0.001}}
  - {id: b, action: probe.work, needs: [a], for_each: [1, 2], with: {value: "${{ item }}"}}
  - {id: c, action: probe.work, needs: [b], if: "`false`"}
"""
    record = run(host, text, journal=events.append)
    conductor = Conductor.replay(parse_playbook(text, host.actions), {}, events)
    assert conductor.record(record["run_id"]) == record


def test_resume_runs_only_what_is_left(host: PluginHost, probe: Probe) -> None:
    text = """
name: resume
steps:
  - {id: a, action: probe.work}
  - {id: b, action: probe.work, needs: [a]}
  - {id: c, action: probe.work, needs: [b]}
"""
    events: list[dict[str, Any]] = []
    record = run(host, text, journal=events.append)
    # Cut the journal as if the process died while b was in flight.
    cut = next(i for i, e in enumerate(events) if e["type"] == "step_started"
               and e["step"] == "b") + 1
    probe.calls.clear()
    playbook = parse_playbook(text, host.actions)
    resumed = Runner(host).resume(playbook, record["run_id"], {}, events[:cut])
    assert resumed["status"] == "succeeded"
    assert probe.calls == Counter({"b": 1, "c": 1})
    assert resumed["steps"]["b"]["attempts"] == 2  # the lost attempt and the new one


def test_idempotency_key_is_stable_and_distinct() -> None:
    assert idempotency_key("r", "s") == idempotency_key("r", "s")
    assert len({idempotency_key("r", "s"), idempotency_key("r", "t"),
                idempotency_key("q", "s"), idempotency_key("r", "s", 0)}) == 4


def test_scheduler_does_not_wait_for_slow_siblings(host: PluginHost, probe: Probe) -> None:
    # c needs only a; it must start while b (slow) is still running.
    started: dict[str, float] = {}

    def journal(event: dict[str, Any]) -> None:
        if event["type"] == "step_started":
            started[event["step"]] = time.monotonic()
        if event["type"] == "step_succeeded" and event["step"] == "b":
            started["b_done"] = time.monotonic()

    run(host, """
name: eager
steps:
  - {id: a, action: probe.work}
  - {id: b, action: probe.work, with: {sleep: 0.3}}
  - {id: c, action: probe.work, needs: [a]}
""", journal=journal)
    assert started["c"] < started["b_done"]


def test_cascade_of_skips_with_nothing_running_ends(host: PluginHost) -> None:
    # Every decision here is made without any step in flight; the run must still end.
    record = run(host, """
name: cascade
steps:
  - {id: a, action: probe.work, if: "`false`"}
  - {id: b, action: probe.work, needs: [a], when: failure}
  - {id: c, action: probe.work, needs: [b]}
  - {id: d, action: probe.work, needs: [c], when: always}
""")
    assert [s["status"] for s in record["steps"].values()] == ["skipped", "skipped", "skipped",
                                                               "succeeded"]
    assert record["status"] == "succeeded"


def test_retry_after_beyond_the_cap_gives_up(host: PluginHost, probe: Probe) -> None:
    probe.failures["a"] = [RateLimited("slow", vendor="v", operation="op", status=429,
                                       retry_after=3600)]
    record = run(host, """
name: cap
steps:
  - {id: a, action: probe.work, retry: {max_attempts: 3, backoff_seconds: 0.01, max_backoff_seconds: 60}}
""")
    assert record["steps"]["a"]["attempts"] == 1
    assert "asked to wait 3600s, longer than max_backoff_seconds 60s" in \
        record["steps"]["a"]["error"]


WAIT_PLAYBOOK = """
name: approval
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Contain the host?", approvers: [alice], timeout_seconds: 3600}
  - {id: contain, action: probe.work, needs: [ask]}
  - {id: escalate, action: probe.work, needs: [ask], when: failure}
  - {id: parallel, action: probe.work}
"""


def _wait_and_resume(host: PluginHost, answers: Any, now: Any = None) -> tuple[dict, dict]:
    events: list[dict[str, Any]] = []
    playbook = parse_playbook(WAIT_PLAYBOOK, host.actions)
    first = Runner(host, journal=events.append).run(playbook, {})
    resumed = Runner(host, journal=events.append).resume(playbook, first["run_id"], {},
                                                         list(events), answers, now)
    return first, resumed


def test_wait_for_approval_then_approve(host: PluginHost, probe: Probe) -> None:
    first, resumed = _wait_and_resume(host, {"ask": {"decision": "approve", "by": "alice",
                                                      "comment": "go", "at": "t"}})
    assert first["status"] == "waiting"
    assert first["steps"]["ask"]["status"] == "waiting"
    assert first["steps"]["parallel"]["status"] == "succeeded"  # other branches go on
    assert first["steps"]["contain"]["status"] == "pending"
    assert resumed["status"] == "succeeded"
    assert resumed["steps"]["ask"]["output"]["by"] == "alice"
    assert probe.calls == Counter({"parallel": 1, "contain": 1})


def test_rejection_and_expiry_fail_the_wait(host: PluginHost, probe: Probe) -> None:
    from datetime import UTC, datetime, timedelta

    _, rejected = _wait_and_resume(host, {"ask": {"decision": "reject", "by": "alice",
                                                  "comment": "false positive"}})
    assert rejected["steps"]["ask"]["error"] == "rejected by alice: false positive"
    assert rejected["steps"]["escalate"]["status"] == "succeeded"
    _, still = _wait_and_resume(host, {})
    assert still["status"] == "waiting"
    _, expired = _wait_and_resume(host, {}, datetime.now(UTC) + timedelta(hours=2))
    assert expired["steps"]["ask"]["error"].startswith("no answer before ")
    assert expired["steps"]["escalate"]["status"] == "succeeded"


def test_ctx_poll_waits_and_gives_up() -> None:
    from crownguard.engine.config import Connections

    ctx = ActionContext(run_id="r", step_id="s", attempt=1, idempotency_key="k",
                        connections=Connections())
    answers = iter([None, None, "done"])
    assert ctx.poll(lambda: next(answers), interval=0.001, max_wait=5, waiting_for="x",
                    vendor="v") == "done"
    with pytest.raises(ActionError, match="v: still waiting for the host after 0.01s") as info:
        ctx.poll(lambda: None, interval=0.002, max_wait=0.01, waiting_for="the host",
                 vendor="v")
    assert info.value.retryable


def test_resume_keeps_a_pending_retry_after(host: PluginHost, probe: Probe) -> None:
    """Killed while waiting out a vendor's Retry-After: the resume waits the rest of it."""
    from datetime import UTC, datetime, timedelta

    text = "name: ra\nsteps:\n  - {id: a, action: probe.work, retry: {max_attempts: 3}}\n"
    playbook = parse_playbook(text, host.actions)
    failed_at = datetime.now(UTC)
    events = [
        {"type": "run_started", "run_id": "r1", "at": failed_at.isoformat()},
        {"type": "step_started", "step": "a", "attempt": 1, "run_id": "r1",
         "at": failed_at.isoformat()},
        {"type": "attempt_failed", "step": "a", "attempt": 1, "error": "429", "retry_in": 0.4,
         "run_id": "r1", "at": failed_at.isoformat()},
    ]
    started: list[float] = []
    runner = Runner(host, journal=lambda e: started.append(time.monotonic())
                    if e["type"] == "step_started" else None)
    begin = time.monotonic()
    record = runner.resume(playbook, "r1", {}, events, now=failed_at + timedelta(seconds=0.1))
    assert record["status"] == "succeeded" and record["steps"]["a"]["attempts"] == 2
    assert started and started[0] - begin >= 0.25  # the ~0.3 s left of the wait


def test_a_long_step_keeps_its_journal_lease(host: PluginHost, tmp_path: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from crownguard.engine import execution as execution_module
    from crownguard.engine.journal import SQLiteJournal

    class Counting(SQLiteJournal):
        renewals = 0

        def renew_lease(self, run_id: str) -> bool:
            Counting.renewals += 1
            return super().renew_lease(run_id)

    monkeypatch.setattr(execution_module, "HEARTBEAT_SECONDS", 0.05)
    journal = Counting(tmp_path / "j.sqlite")
    record = Runner(host, journal=journal).run(parse_playbook(
        "name: long\nsteps:\n  - {id: a, action: probe.work, with: {sleep: 0.4}}\n",
        host.actions), {})
    journal.close()
    assert record["status"] == "succeeded"
    assert Counting.renewals >= 2  # heartbeats while the step was quiet
