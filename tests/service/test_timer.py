"""The service's timer (engine/service/timer.py) and run locks (run_locks.py): a wait is
settled once, at its deadline, found by the journal's index without reading the runs that
wait; an answer recorded but not acted on is resumed; and an operation on one run does not
wait behind a timer pass over others."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from servicetest import SHORT_WAIT, new_event, start_service, wait_for

from crownguard.engine import runs
from crownguard.engine.kinds import EventType, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.service.run_locks import RunLocks
from crownguard.engine.service.service import Options, Service

EVENT = {"actor": {"email": "dev@corp.example"}, "file": {"name": "m.safetensors"}}


@pytest.fixture
def service(service_files: dict[str, Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in service_files["env"].items():
        monkeypatch.setenv(name, value)
    started = Service.start(PluginHost.from_entry_points(),
                            Options(str(service_files["config"]), str(service_files["policy"]),
                                    str(tmp_path / "j.sqlite")))
    yield started
    started.close()


def start_runs(service: Any, playbook: str, count: int) -> list[str]:
    """COUNT runs of the playbook, each left waiting on its first step."""
    runner = Runner(service.host, service.config, journal=service.journal)
    chosen = service.triage.router.playbooks[playbook]
    ids = [runner.run(chosen, EVENT)["run_id"] for _ in range(count)]
    assert all(service.journal.get_run(i).status == RunStatus.WAITING for i in ids)
    return ids


def expiries(service: Any, run_id: str) -> list[dict[str, Any]]:
    return [e for e in service.journal.events(run_id)
            if e["type"] == EventType.STEP_FAILED and "no answer before" in e.get("error", "")]


def test_an_expired_wait_is_settled_once_at_its_deadline(service: Any) -> None:
    timer = service.background.timer
    timer.tick = 30.0  # the deadline, not the tick, says when
    [run_id] = start_runs(service, "short-wait", 1)
    [wait] = service.journal.open_waits(run_id)
    assert wait.expires_at is not None
    pause = timer.pause()
    assert 0.5 < pause <= 1.01
    assert timer.settle().resumed == []  # not due yet: not even claimed
    assert service.journal.get_run(run_id).status == RunStatus.WAITING
    time.sleep(pause)
    assert time.time() >= wait.expires_at
    done = timer.settle()
    assert [o.record["run_id"] for o in done.resumed] == [run_id]
    assert service.journal.get_run(run_id).status == RunStatus.FAILED
    assert timer.settle().resumed == [] and len(expiries(service, run_id)) == 1
    assert timer.pause() == 30.0  # nothing left to wait for


def test_a_pass_reads_none_of_the_runs_that_wait(service: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    start_runs(service, "contain-after-approval", 40)
    read: list[str] = []
    events = service.journal.events

    def counted(run_id: str) -> Any:
        read.append(run_id)
        return events(run_id)

    monkeypatch.setattr(service.journal, "events", counted)
    timer = service.background.timer
    done = timer.settle()
    assert done.resumed == [] and done.failed == [] and read == []
    assert timer.pause() == timer.tick  # the next deadline is ten minutes away


def test_an_answer_recorded_but_not_acted_on_is_resumed(service: Any) -> None:
    [run_id] = start_runs(service, "contain-after-approval", 1)
    # As if the process answering it stopped between recording the answer and resuming.
    service.journal.record_approval(run_id, "ask", "reject", "alice@corp.example")
    timer = service.background.timer
    assert [o.record["run_id"] for o in timer.settle().resumed] == [run_id]
    assert service.journal.get_run(run_id).status == RunStatus.FAILED
    assert timer.settle().resumed == []


def test_the_timer_leaves_a_run_another_operation_holds(service: Any) -> None:
    [run_id] = start_runs(service, "short-wait", 1)
    time.sleep(1.05)
    timer = service.background.timer
    with service.operation(run_id[:10]) as full:  # an API call acting on it
        assert full == run_id
        passes: list[Any] = []
        sweep = threading.Thread(target=lambda: passes.append(timer.settle()))
        sweep.start()
        sweep.join(30)
        [done] = passes
        assert done.resumed == [] and [r for r, _ in done.skipped] == [run_id]
    assert [o.record["run_id"] for o in timer.settle().resumed] == [run_id]


def test_an_answer_does_not_wait_behind_a_timer_pass(service: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    [answered] = start_runs(service, "contain-after-approval", 1)
    expiring = set(start_runs(service, "short-wait", 6))
    time.sleep(1.05)
    busy = threading.Event()
    observe = service.background.observe

    def slow(event: dict[str, Any]) -> None:  # each settled wait takes a while
        observe(event)
        if event.get("run_id") in expiring:
            busy.set()
            time.sleep(0.25)

    monkeypatch.setattr(service.background, "observe", slow)
    sweep = threading.Thread(target=service.background.settle)
    sweep.start()
    try:
        assert busy.wait(10)
        began = time.monotonic()
        with service.operation(answered):
            result = runs.answer(service.journal, service.host, answered, "ask", "reject",
                                 by="alice@corp.example", config_path=service.config_path)
        took = time.monotonic() - began
        assert result.accepted and sweep.is_alive(), "the pass ended before the answer"
        assert took < 1.0, f"the answer waited {took:.2f} s behind the timer"
    finally:
        sweep.join(60)
    assert all(service.journal.get_run(r).status == RunStatus.FAILED for r in expiring)


def test_run_locks_are_dropped_when_nobody_holds_them() -> None:
    locks = RunLocks()
    with locks.hold("a") as first:
        assert first and len(locks) == 1
        other: list[bool] = []

        def try_it() -> None:
            with locks.hold("a", blocking=False) as got:
                other.append(got)

        thread = threading.Thread(target=try_it)
        thread.start()
        thread.join()
        assert other == [False]
    assert len(locks) == 0


def test_a_served_wait_ends_at_its_deadline_not_at_the_tick(
        service_files: dict[str, Any], tmp_path: Path) -> None:
    served = start_service(service_files, tmp_path / "j.sqlite",
                           {"CROWNGUARD_TIMER_SECONDS": "60"})
    try:
        event = new_event(SHORT_WAIT)
        served.post_event(event)
        [run] = served.runs_of(event["id"])

        def ended() -> Any:
            shown = served.call("GET", f"/v1/runs/{run['run_id']}").json()
            return shown if shown["status"] != "waiting" else None

        shown = wait_for(ended, 10, "the wait to end at its deadline (1 s), not the tick (60 s)")
        assert shown["status"] == "failed" and shown["steps"]["ask"]["status"] == "failed"
    finally:
        assert served.stop() == 0, "".join(served.log)
