"""The journal's fast paths keep what the slow ones guaranteed: one transaction per scheduling
round (all of a round or none of it), the lease left to the heartbeat but never lost, one
serialisation giving the same canonical text, threads kept between runs, fast paths that still
mask secrets and still name schema errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crownguard.engine import ActionContext, action, hookimpl
from crownguard.engine.errors import InputError, JournalError, RunEnded
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.journal.audit import canonical_json, canonical_payload
from crownguard.engine.journal.base import utc_now
from crownguard.engine.runner import Runner
from crownguard.engine.secrets import MASK, Redactor, Secret
from crownguard.engine.spec import parse_playbook
from crownguard.engine.validation import schema_errors

CHAIN = """
name: chain
steps:
  - {id: a, action: speed.call, with: {n: 1}}
  - {id: b, action: speed.call, needs: [a], with: {n: 2}}
  - {id: c, action: speed.call, needs: [b], with: {n: 3}}
"""


class Calls:
    """speed.call: a thread-pool action that notes the thread it ran on."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        @action("speed.call", input_schema={"type": "object"})
        def call(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            """Note the thread."""
            self.threads.append(threading.current_thread())
            return {"n": inputs["n"]}

        register(call)


class CountingJournal(SQLiteJournal):
    def __init__(self, path: Path):
        super().__init__(path)
        self.batches: list[list[str]] = []

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        self.batches.append([f"{e['type']}:{e.get('step', '')}" for e in events])
        return super().append_many(events)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def host(isolated_host: Any, calls: Calls) -> Any:
    return isolated_host(calls, name="speed")


def test_a_scheduling_round_is_one_transaction(host: Any, tmp_path: Path) -> None:
    journal = CountingJournal(tmp_path / "j.sqlite")
    record = Runner(host, journal=journal).run(parse_playbook(CHAIN, host.actions), {})
    assert record["status"] == "succeeded"
    # Each step's start is journaled with the result that made it ready, before its call.
    assert journal.batches == [
        ["run_started:", "step_started:a"],
        ["step_succeeded:a", "step_started:b"],
        ["step_succeeded:b", "step_started:c"],
        ["step_succeeded:c", "run_finished:"]]
    assert journal.verify() == []
    assert [e["type"] for e in journal.events(record["run_id"])][-1] == "run_finished"


def _event(run_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "run_id": run_id, "at": utc_now(), **fields}


def test_append_many_stores_all_of_a_round_or_none(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    journal.create_run("r1", "p", "name: p\nsteps: []\n", inputs={})
    head = journal.head()
    with pytest.raises(JournalError, match="cannot journal"):
        journal.append_many([_event("r1", "step_started", step="a"),
                             _event("r1", "step_succeeded", step="a", output={"x": object()})])
    assert journal.head() == head and journal.events("r1") == []
    with pytest.raises(JournalError, match="one run"):
        journal.append_many([_event("r1", "step_started", step="a"),
                             _event("r2", "step_started", step="a")])
    seqs = journal.append_many([_event("r1", "step_started", step="a"),
                                _event("r1", "step_succeeded", step="a", output={}),
                                _event("r1", "run_finished", status="succeeded")])
    assert seqs == [head[0] + 1, head[0] + 2, head[0] + 3]
    assert journal.get_run("r1").status == "succeeded"
    assert journal.verify() == []


def test_a_cancelled_run_refuses_a_round_that_comes_after(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.sqlite")
    journal.create_run("r1", "p", "name: p\nsteps: []\n", inputs={})
    journal.append(_event("r1", "run_cancelled", reason="stop", cancelled_steps=[]))
    with pytest.raises(RunEnded):
        journal.append_many([_event("r1", "step_started", step="a")])
    # ... and a round that cancels and then goes on is refused whole.
    journal.create_run("r2", "p", "name: p\nsteps: []\n", inputs={})
    with pytest.raises(RunEnded):
        journal.append_many([_event("r2", "run_cancelled", reason="x", cancelled_steps=[]),
                             _event("r2", "step_started", step="a")])
    assert journal.events("r2") == []


def _lease(journal: SQLiteJournal, run_id: str) -> float | None:
    return journal.get_run(run_id).lease_expires


def test_appends_leave_the_lease_to_the_heartbeat_until_half_is_gone(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "j.sqlite", lease_seconds=100)
    journal.create_run("r1", "p", "name: p\nsteps: []\n", inputs={})
    taken = _lease(journal, "r1")
    assert taken is not None
    time.sleep(0.01)
    journal.append(_event("r1", "step_started", step="a"))
    assert _lease(journal, "r1") == taken  # not rewritten: the heartbeat renews it
    assert journal.renew_lease("r1") and _lease(journal, "r1") > taken  # type: ignore[operator]
    with journal._write() as conn:  # less than half of it left
        conn.execute("UPDATE runs SET lease_expires = ? WHERE run_id = 'r1'", (time.time() + 40,))
    journal.append(_event("r1", "step_succeeded", step="a", output={}))
    assert _lease(journal, "r1") > time.time() + 90  # type: ignore[operator]
    with journal._write() as conn:  # expired: the next append takes it back
        conn.execute("UPDATE runs SET lease_expires = ? WHERE run_id = 'r1'", (time.time() - 1,))
    journal.append(_event("r1", "step_started", step="b"))
    assert _lease(journal, "r1") > time.time() + 90  # type: ignore[operator]
    journal.append(_event("r1", "run_finished", status="succeeded"))
    assert _lease(journal, "r1") is None


def test_call_threads_are_kept_between_runs(host: Any, calls: Calls) -> None:
    playbook = parse_playbook(CHAIN, host.actions)
    assert Runner(host).run(playbook, {})["status"] == "succeeded"  # a thread for the calls
    before = set(threading.enumerate())
    calls.threads.clear()
    for _ in range(10):
        assert Runner(host).run(playbook, {})["status"] == "succeeded"
    # 30 calls, one after the other, each on a thread that was there already: no new pool
    # (nor new threads) per run.
    assert len(calls.threads) == 30
    assert all(t in before and t.is_alive() for t in calls.threads)


keys = st.one_of(st.text(max_size=5), st.integers(-5, 5))
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    | st.dictionaries(keys, inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(values)
def test_one_serialisation_is_the_text_of_a_json_round_trip(value: Any) -> None:
    try:
        expected = canonical_json(json.loads(json.dumps(value)))
    except TypeError:  # keys json itself cannot sort or mix
        return
    assert canonical_payload(value) == expected
    assert canonical_json(json.loads(canonical_payload(value))) == canonical_payload(value)


def test_with_no_secret_known_secrets_are_still_masked_in_a_copy() -> None:
    redactor = Redactor()
    value = {"a": [Secret("hunter22"), {"b": (1, "x")}], "c": Secret("s3cr3t!")}
    redacted = redactor.redact_value(value)
    assert redacted == {"a": [MASK, {"b": [1, "x"]}], "c": MASK}
    assert redacted is not value and redacted["a"][1] is not value["a"][1]


def test_the_any_object_schema_still_names_what_is_wrong() -> None:
    assert schema_errors({"type": "object"}, {"x": 1}) == []
    errors = schema_errors({"type": "object"}, ["not", "an", "object"])
    assert errors and "is not of type 'object'" in errors[0].message


def test_an_action_output_that_is_not_an_object_fails_its_step(isolated_host: Any) -> None:
    class Bad:
        @hookimpl
        def crownguard_register_actions(self, register: Any) -> None:
            register(action("bad.list", input_schema={"type": "object"})(
                lambda ctx, inputs: ["a list"]))

    host = isolated_host(Bad(), name="bad")
    playbook = parse_playbook("name: b\nsteps:\n  - {id: s, action: bad.list}\n", host.actions)
    record = Runner(host).run(playbook, {})
    assert record["status"] == "failed"
    assert "output does not match its schema" in record["steps"]["s"]["error"]
    with pytest.raises(InputError):
        host.action("bad.list").validate_output(["a list"])
