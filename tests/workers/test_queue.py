"""The queue's parts in one process against a real Redis and both journals: a queued run is
what `Runner.run` would have journaled first, a delivery twice (or in two threads at once)
performs it once, the sweeper finds the runs nobody holds and sends each once, and a broker
that is away loses nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.config import config_from_mapping
from crownguard.engine.journal import SQLiteJournal, open_journal
from crownguard.engine.kinds import EventType, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.service.worker.broker import broker_from
from crownguard.engine.service.worker.intake import (
    create_queued_run,
    handoff_journal,
    run_inputs,
)
from crownguard.engine.service.worker.perform import Outcome, Performer
from crownguard.engine.service.worker.queue import (
    MARK_PREFIX,
    QUEUE,
    BrokerUnavailable,
    RunQueue,
)
from crownguard.engine.service.worker.sweeper import Sweeper
from crownguard.engine.spec import parse_playbook

PLAYBOOK = """
name: queued
vars: {team: soc}
steps:
  - id: contain
    action: falcon.contain_host
    with: {device_id: "${{ event.device_id }}"}
  - id: suspend
    action: okta.suspend_user
    needs: [contain]
    with: {user: "${{ event.user }}"}
"""


@pytest.fixture(scope="module")
def vendors() -> Any:
    host = PluginHost.from_entry_points()
    mocks = {name: host.mock_servers[name].factory() for name in ("falcon", "okta")}
    for mock in mocks.values():
        mock.start()
    connections = {name: mock.connection_settings() for name, mock in mocks.items()}
    config = config_from_mapping({"connections": connections, "settings": {
        "vars": {"site": "hq"}}}, host.connection_types)
    yield host, mocks, config
    for mock in mocks.values():
        mock.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "journal.sqlite")
    return str(request.getfixturevalue("postgres_dsn"))


def _event(mocks: dict[str, Any], tag: str) -> dict[str, Any]:
    device_id = f"{abs(hash(tag)) % (1 << 64):032x}"
    mocks["falcon"].add_host(f"host-{tag}", device_id=device_id)
    mocks["okta"].add_user(f"{tag}@example.com")
    return {"device_id": device_id, "user": f"{tag}@example.com"}


def _queue_run(journal_target: str, vendors: Any, tag: str) -> tuple[str, dict[str, Any]]:
    host, mocks, config = vendors
    playbook = parse_playbook(PLAYBOOK, host.actions)
    event = _event(mocks, tag)
    run_id = f"{tag:0<32}"[:32]
    with open_journal(journal_target) as journal:
        creator = handoff_journal(journal)
        try:
            create_queued_run(creator, config, playbook, event, {"score": 80}, run_id=run_id)
        finally:
            creator.close()
    return run_id, event


def test_a_queued_run_is_what_runner_run_journals_first(vendors: Any, tmp_path: Path) -> None:
    host, _, config = vendors
    playbook = parse_playbook(PLAYBOOK, host.actions)
    event, risk = {"device_id": "d" * 32, "user": "u@example.com"}, {"score": 80}
    with SQLiteJournal(tmp_path / "a.sqlite") as direct, \
            SQLiteJournal(tmp_path / "b.sqlite", lease_seconds=0) as queued:
        Runner(host, config, journal=direct, dry_run=False).run(
            parse_playbook(PLAYBOOK.replace("falcon.contain_host", "core.noop").replace(
                "okta.suspend_user", "core.noop"), host.actions), event, risk=risk,
            run_id="r" * 32)
        create_queued_run(queued, config, playbook, event, risk, run_id="r" * 32)
        ran, made = direct.get_run("r" * 32), queued.get_run("r" * 32)
        assert made.inputs == ran.inputs
        assert made.inputs["vars"] == {"team": "soc", "site": "hq"}
        first = [{k: v for k, v in e.items() if k != "at"} for e in direct.events("r" * 32)[:1]]
        assert [{k: v for k, v in e.items() if k != "at"} for e in queued.events("r" * 32)] \
            == first
        assert first[0]["type"] == EventType.RUN_STARTED
        assert made.status == RunStatus.RUNNING and made.lease_expires <= time.time()


def test_a_run_delivered_twice_at_once_and_again_later_is_performed_once(
        vendors: Any, journal_target: str) -> None:
    host, mocks, config = vendors
    run_id, event = _queue_run(journal_target, vendors, "twice")
    mocks["okta"].inject("latency", seconds=0.3, times=None)
    taken: list[str] = []
    try:
        with open_journal(journal_target, lease_seconds=5) as journal:
            performer = Performer(journal, host, config_path=None, config=config,
                                  on_taken=taken.append)
            results: list[Any] = []
            threads = [threading.Thread(target=lambda: results.append(performer.perform(run_id)))
                       for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            late = performer.perform(run_id)
            assert journal.get_run(run_id).status == RunStatus.SUCCEEDED
            starts = [e["step"] for e in journal.events(run_id)
                      if e["type"] == EventType.STEP_STARTED]
    finally:
        mocks["okta"].clear_faults()
    assert sorted(r.outcome for r in results) == [Outcome.HELD, Outcome.HELD,
                                                  Outcome.PERFORMED]
    assert late.outcome == Outcome.ENDED
    assert taken == [run_id]
    assert starts == ["contain", "suspend"]  # each step once
    assert mocks["falcon"].hosts[event["device_id"]].status == "contained"
    assert len(mocks["okta"].calls_to("POST", None)) >= 1
    assert mocks["okta"].status_of(event["user"]) == "SUSPENDED"


def test_a_run_created_by_a_process_that_died_before_starting_it_is_started_then_performed(
        vendors: Any, journal_target: str) -> None:
    """create_run and the run_started append are two transactions: a crash between them left
    a run whose journal began with no start. A worker records the start (marked recovered),
    once, and performs every step once."""
    host, mocks, config = vendors
    playbook = parse_playbook(PLAYBOOK, host.actions)
    event = _event(mocks, "unstarted")
    run_id = f"{'unstarted':0<32}"
    with open_journal(journal_target) as journal:
        creator = handoff_journal(journal)
        try:
            inputs = run_inputs(playbook, config, run_id, event, {"score": 80})
            creator.create_run(run_id, playbook.name, playbook.text, inputs=inputs)
        finally:
            creator.close()
    with open_journal(journal_target, lease_seconds=5) as journal:
        assert journal.events(run_id) == []
        seen: list[dict[str, Any]] = []
        performer = Performer(journal, host, config_path=None, config=config,
                              on_event=seen.append)
        assert performer.perform(run_id).outcome == Outcome.PERFORMED
        assert performer.perform(run_id).outcome == Outcome.ENDED
        events = journal.events(run_id)
        record = journal.get_run(run_id)
        assert journal.verify() == []
    kinds = [e["type"] for e in events]
    assert kinds[:2] == [EventType.RUN_STARTED, EventType.RUN_RESUMED]
    assert kinds.count(EventType.RUN_STARTED) == 1
    assert events[0]["recovered"] is True and events[0]["inputs"]["event"] == event
    assert seen[0]["type"] == EventType.RUN_STARTED
    assert record.status == RunStatus.SUCCEEDED
    assert [e["step"] for e in events if e["type"] == EventType.STEP_STARTED] == \
        ["contain", "suspend"]
    assert mocks["okta"].status_of(event["user"]) == "SUSPENDED"


def test_another_process_holding_the_run_makes_a_delivery_do_nothing(
        vendors: Any, tmp_path: Path) -> None:
    host, _, config = vendors
    target = str(tmp_path / "journal.sqlite")
    run_id, _ = _queue_run(target, vendors, "held")
    with SQLiteJournal(target) as journal:
        # A live writer elsewhere: its lease is current, so nobody else may take the run.
        journal._write().__enter__().execute(
            "UPDATE runs SET owner_host = 'other-machine', owner_pid = 1, "
            "lease_expires = ? WHERE run_id = ?", (time.time() + 60, run_id))
        done = Performer(journal, host, config_path=None, config=config).perform(run_id)
        assert done.outcome == Outcome.HELD
        assert [e["type"] for e in journal.events(run_id)] == [EventType.RUN_STARTED]


def test_enqueue_sends_once_until_a_worker_takes_the_run(broker: Any, redis_db: Any) -> None:
    _, client = redis_db
    queue = RunQueue(broker)
    try:
        assert queue.enqueue("a" * 32) is True
        assert queue.enqueue("a" * 32) is False  # queued already: the marker says so
        assert client.llen(QUEUE) == 1
        assert 0 < client.pttl(MARK_PREFIX + "a" * 32) <= queue.mark_seconds * 1000
        queue.taken("a" * 32)
        assert queue.enqueue("a" * 32) is True
        assert client.llen(QUEUE) == 2
    finally:
        queue.close()


def test_sweeper_sends_each_run_nobody_holds_once(vendors: Any, broker: Any,
                                                   redis_db: Any, tmp_path: Path) -> None:
    host, _, _ = vendors
    _, client = redis_db
    target = str(tmp_path / "journal.sqlite")
    orphans = [_queue_run(target, vendors, f"orphan{n}")[0] for n in range(3)]
    queue = RunQueue(broker)
    try:
        with SQLiteJournal(target) as journal:
            assert journal.claim(orphans[2])  # this live process holds one of them
            sweep = Sweeper(queue, journal, host)
            assert sorted(sweep.settle().enqueued) == orphans[:2]
            assert sweep.settle().enqueued == []  # queued: not sent at every tick
            client.flushall()  # the messages and their markers are lost
            assert sorted(sweep.settle().enqueued) == orphans[:2]
            assert client.llen(QUEUE) == 2
    finally:
        queue.close()


def test_broker_away_the_run_stays_in_the_journal_and_is_sent_later(
        vendors: Any, broker: Any, redis_db: Any, tmp_path: Path) -> None:
    from redis_server import free_port

    host, _, _ = vendors
    _, client = redis_db
    target = str(tmp_path / "journal.sqlite")
    run_id, _ = _queue_run(target, vendors, "away")
    away = RunQueue(broker_from(f"redis://127.0.0.1:{free_port()}/0"))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=r"redis://:\*\*\*@127.0.0.1:\d+/0 cannot be reached"):
        away.enqueue(run_id)
    with SQLiteJournal(target) as journal:
        swept = Sweeper(away, journal, host).settle()
        assert swept.enqueued == [] and len(swept.broker_down) == 1
        assert time.monotonic() - started < 20
        back = RunQueue(broker)
        try:
            assert Sweeper(back, journal, host).settle().enqueued == [run_id]
        finally:
            back.close()
    assert client.llen(QUEUE) == 1
