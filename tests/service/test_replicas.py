"""Several `crownguard serve` replicas on one PostgreSQL journal (engine/service/replicas.py):
one of them polls Incydr at a time and the other takes over when it is killed with -9, every
polled event is triaged once; and a wait that two replicas' timers both see due is settled by
one of them."""

from __future__ import annotations

import copy
import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from servicetest import SAMPLE, Served, start_service, wait_for, write_service_files

from crownguard.engine.kinds import EventType, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet
from crownguard.engine.service.replicas import ExclusivePoller, poller_lock
from crownguard.engine.service.service import Options, Service
from crownguard.engine.spec import parse_playbook

POLLS = "poller incydr: this replica polls"
WAITS_ELSEWHERE = "poller incydr: another replica polls"


def rows(dsn: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as db:
        return list(db.execute(sql, args).fetchall())


def polled_event(at: datetime) -> dict[str, Any]:
    """A removable-media copy of a model file Incydr holds: triage starts a run for it."""
    event = copy.deepcopy(json.loads(SAMPLE.read_text()))
    event["@timestamp"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event["event"]["id"] = f"poll-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex[:10]
    event["file"]["name"] = f"model-{tag}.safetensors"
    event["file"]["directory"] = f"E:/models/{tag}/"
    event["file"]["hash"]["sha256"] = uuid.uuid4().hex * 2
    return event


def poll_files(folder: Path, fleet: MockFleet, interval: float) -> dict[str, Any]:
    """The service tests' files with the incydr connection (its secret by reference) and
    service.incydr_poll."""
    files = write_service_files(folder, fleet)
    config = json.loads(Path(files["config"]).read_text())
    incydr = dict(fleet.connections()["incydr"])
    for key in fleet.host.connection_types["incydr"].secrets:
        if key in incydr:
            files["env"][f"CG_TEST_INCYDR_{key.upper()}"] = str(incydr[key])
            incydr[key] = f"${{env:CG_TEST_INCYDR_{key.upper()}}}"
    config["connections"]["incydr"] = incydr
    config["service"]["incydr_poll"] = {"interval_seconds": interval}
    Path(files["config"]).write_text(json.dumps(config))
    return files


def polled_intake(dsn: str) -> dict[str, str]:
    return {str(e): str(s) for e, s in rows(dsn, "SELECT event_id, status FROM service_intake "
                                                 "WHERE source = 'incydr-poll'")}


def serve(files: dict[str, Any], dsn: str) -> Served:
    return start_service(files, None, env={"CROWNGUARD_JOURNAL": dsn})


def test_one_replica_polls_and_the_other_takes_over_after_a_kill_9(
        service_fleet: MockFleet, tmp_path: Path, postgres_dsn: str) -> None:
    service_fleet.reset()
    incydr = service_fleet.get("incydr")
    incydr.file_events.clear()  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    first = [polled_event(now - timedelta(seconds=30 - n)) for n in range(4)]
    for event in first:
        incydr.add_file_event(event)  # type: ignore[attr-defined]
    files = poll_files(tmp_path, service_fleet, 0.3)
    replicas = [serve(files, postgres_dsn) for _ in range(2)]
    try:
        wait_for(lambda: sorted(polled_intake(postgres_dsn).values()) == ["done"] * 4, 60,
                 "the polled events to be processed")
        time.sleep(1.5)  # several polls of both replicas' pollers
        logs = ["".join(r.log) for r in replicas]
        assert [POLLS in log for log in logs].count(True) == 1, logs
        [holder] = [r for r, log in zip(replicas, logs, strict=True) if POLLS in log]
        [other] = [r for r in replicas if r is not holder]
        assert WAITS_ELSEWHERE in "".join(other.log)
        # Each event once: one intake item, one run.
        assert sorted(polled_intake(postgres_dsn)) == sorted(e["event"]["id"] for e in first)
        assert rows(postgres_dsn, "SELECT count(*) FROM runs") == [(4,)]

        holder.stop(signal.SIGKILL)  # its connections end: the server lets go of its lock
        later = [polled_event(datetime.now(UTC) - timedelta(seconds=1)) for _ in range(3)]
        for event in later:
            incydr.add_file_event(event)  # type: ignore[attr-defined]
        wait_for(lambda: POLLS in "".join(other.log), 30, "the other replica to take over")
        wait_for(lambda: sorted(polled_intake(postgres_dsn).values()) == ["done"] * 7, 60,
                 "the later events to be processed by the other replica")
        time.sleep(1.0)  # more polls over the overlap: nothing stored or triaged twice
        assert sorted(polled_intake(postgres_dsn)) == \
            sorted(e["event"]["id"] for e in (*first, *later))
        assert rows(postgres_dsn, "SELECT count(*) FROM runs") == [(7,)]
        assert rows(postgres_dsn, "SELECT count(DISTINCT run_id) FROM runs WHERE status = "
                                  "'waiting'") == [(7,)]
    finally:
        for replica in replicas:
            replica.stop(signal.SIGKILL)
    assert "Traceback" not in "".join(other.log), "".join(other.log)


def test_the_poller_lock_is_one_holder_and_lets_go_with_its_connection(
        postgres_dsn: str) -> None:
    from crownguard.engine.journal.postgres import PostgresJournal

    with PostgresJournal(postgres_dsn) as journal:
        one, two = poller_lock(journal, "incydr"), poller_lock(journal, "incydr")
        try:
            assert one.acquire() and one.acquire()  # held: taking it again is a no-op
            assert not two.acquire()
            assert one.holds() and not two.holds()
            # The holder's connection ends (a replica killed, a network lost).
            rows(postgres_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                               "application_name = 'crownguard-replica-locks' AND "
                               "pid <> pg_backend_pid() AND state = 'idle'")
            deadline = time.monotonic() + 10
            while not two.acquire():
                assert time.monotonic() < deadline, "the lock was not let go"
                time.sleep(0.05)
            assert not one.holds()  # the holder finds out before its next poll
        finally:
            one.close()
            two.close()


class _Feed:
    """An IntakePoller's face as ExclusivePoller uses it, counting polls."""

    interval = 0.05

    def __init__(self) -> None:
        self.polls = 0
        self.poller = type("P", (), {"name": "incydr"})()

    def run(self, stop: Any, wake: Any) -> None:
        while not stop.is_set():
            self.polls += 1
            stop.wait(self.interval)

    def lag_seconds(self) -> float:
        return 0.0


def test_a_replica_that_loses_the_lock_stops_polling(postgres_dsn: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading

    from crownguard.engine.journal.postgres import PostgresJournal

    caplog.set_level(logging.INFO, logger="crownguard.service")
    with PostgresJournal(postgres_dsn) as journal:
        feeds = [_Feed(), _Feed()]
        pollers = [ExclusivePoller(f, poller_lock(journal, "incydr"), retry=0.05)
                   for f in feeds]
        stop = threading.Event()
        threads = [threading.Thread(target=p.run, args=(stop, lambda: None)) for p in pollers]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: any(p.holding for p in pollers), 10, "a holder")
            time.sleep(0.3)
            [holder] = [n for n, p in enumerate(pollers) if p.holding]
            assert feeds[holder].polls > 1 and feeds[1 - holder].polls == 0
            rows(postgres_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                               "application_name = 'crownguard-replica-locks' AND "
                               "pid <> pg_backend_pid()")
            wait_for(lambda: "the poller's lock was lost" in caplog.text, 10,
                     "the holder to find its lock lost")
            wait_for(lambda: any(p.holding for p in pollers), 10, "a holder again")
            time.sleep(0.3)
            assert [p.holding for p in pollers].count(True) == 1  # one polls, as before
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
    assert not any(t.is_alive() for t in threads)


TWO_WAITS = """
name: two-waits
steps:
  - id: quick
    action: core.wait_for_approval
    with: {prompt: "quick?", timeout_seconds: 1}
  - id: slow
    action: core.wait_for_approval
    with: {prompt: "slow?", timeout_seconds: 600}
"""


@pytest.fixture
def replicas(service_files: dict[str, Any], postgres_dsn: str,
             monkeypatch: pytest.MonkeyPatch) -> Any:
    """Two services (a replica each) on one PostgreSQL journal, in this process."""
    for name, value in service_files["env"].items():
        monkeypatch.setenv(name, value)
    started = [Service.start(PluginHost.from_entry_points(),
                             Options(str(service_files["config"]),
                                     str(service_files["policy"]), postgres_dsn))
               for _ in range(2)]
    yield started
    for service in started:
        service.background.guard.close()
        service.close()


def test_a_wait_two_replicas_timers_see_due_is_settled_once(replicas: list[Any]) -> None:
    first, second = replicas
    playbook = parse_playbook(TWO_WAITS, first.host.actions)
    runner = Runner(first.host, first.config, journal=first.journal)
    run_id = runner.run(playbook, {"actor": {"email": "dev@corp.example"}})["run_id"]
    assert first.journal.get_run(run_id).status == RunStatus.WAITING
    time.sleep(1.05)  # `quick` is due; `slow` waits on

    timer_a, timer_b = first.background.timer, second.background.timer
    passes: list[Any] = []
    looked_again = timer_b._still_open

    def a_passes_meanwhile(wait: Any, now: Any) -> bool:
        """B reads the wait as due, and A's whole pass happens before B goes on."""
        due = looked_again(wait, now)
        if due and not passes:
            passes.append(timer_a.settle())
        return due

    timer_b._still_open = a_passes_meanwhile  # type: ignore[method-assign]
    done_b = timer_b.settle()
    [done_a] = passes
    resumed = [o.record["run_id"] for o in (*done_a.resumed, *done_b.resumed)]
    assert resumed == [run_id]
    assert "another replica's timer" in str(done_a.skipped)
    events = first.journal.events(run_id)
    expired = [e for e in events if e["type"] == EventType.STEP_FAILED]
    assert [e["step"] for e in expired] == ["quick"]
    assert [e["type"] for e in events].count(EventType.RUN_RESUMED) == 1
    assert first.journal.get_run(run_id).status == RunStatus.WAITING  # on `slow`


def test_on_a_sqlite_journal_the_poller_lock_is_a_file_lock(tmp_path: Path) -> None:
    from crownguard.engine.journal import SQLiteJournal

    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        one, two = poller_lock(journal, "incydr"), poller_lock(journal, "incydr")
        assert one.acquire() and not two.acquire()
        one.release()  # as when its process dies: the kernel lets go of the flock
        assert two.acquire() and not one.acquire()
        two.close()


def test_a_replica_not_polling_reports_each_feed_lag_from_its_stored_cursor() -> None:
    # The group of Incydr feeds (file events and alerts) is polled under one lock; the
    # replicas that do not hold it show every feed's lag from the cursor the holder stores.
    from datetime import UTC, datetime

    from crownguard.engine.service.poller import PollerGroup

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    cursors = {"incydr": "2026-12-02T11:59:00Z", "incydr_alerts": "2026-12-02T11:55:00Z"}
    store = type("S", (), {"cursor": staticmethod(cursors.get)})()

    class Feed(_Feed):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.poller = type("P", (), {"name": name})()
            self.store, self.clock = store, lambda: now

    group = PollerGroup([Feed("incydr"), Feed("incydr_alerts")], 0.05)
    lock = type("L", (), {"acquire": lambda self: False, "close": lambda self: None})()
    poller = ExclusivePoller(group, lock, retry=0.05)
    assert poller.name == "incydr"
    assert poller.lag_seconds() == {"incydr": 60.0, "incydr_alerts": 300.0}
