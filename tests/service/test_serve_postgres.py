"""`crownguard serve` on a PostgreSQL journal, as real processes on a real server
(tests/pg_server.py): signed events in, runs started, an answer through the API, a kill -9
and a restart with nothing lost, two replicas on one database taking each event once, and the
DSN's password in no log line, no answer and no process argument."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from servicetest import SLOW, Served, new_event, start_service, wait_for

from crownguard.engine.scenarios import MockFleet


class PgServed:
    """What the tests read of a service's journal database, outside the service."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as db:
            return list(db.execute(sql, args).fetchall())

    def intake(self) -> list[tuple[str, str]]:
        return [(str(a), str(b)) for a, b in self.rows(
            "SELECT event_id, status FROM service_intake ORDER BY id")]

    def runs_of(self, served: Served, event_id: str, timeout: float = 30.0
                ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.rows("SELECT status, runs, error FROM service_intake WHERE "
                              "event_id = %s", (event_id,))
            if found and found[0][0] in ("done", "failed"):
                assert found[0][0] == "done", found[0][2]
                return [served.call("GET", f"/v1/runs/{run_id}").json()
                        for run_id in json.loads(found[0][1])]
            if time.monotonic() > deadline:
                raise AssertionError(f"event {event_id} not processed: {found}\n"
                                     + "".join(served.log))
            time.sleep(0.1)


@pytest.fixture
def database(postgres_dsn: str) -> PgServed:
    return PgServed(postgres_dsn)


def serve(files: dict[str, Any], dsn: str, **env: str) -> Served:
    """The DSN through the environment, as a deployment gives a secret: not in argv."""
    return start_service(files, None, env={"CROWNGUARD_JOURNAL": dsn, **env})


def _no_password(served: Served, password: str) -> None:
    assert password not in "".join(served.log)
    cmdline = Path(f"/proc/{served.process.pid}/cmdline")
    if cmdline.exists() and served.process.poll() is None:
        assert password.encode() not in cmdline.read_bytes()


def test_serve_takes_events_runs_them_takes_an_answer_and_survives_a_kill_9(
        service_files: dict[str, Any], service_fleet: MockFleet, database: PgServed,
        postgres_server: Any) -> None:
    password = str(postgres_server.password or "")
    okta = service_fleet.get("okta")
    first = serve(service_files, database.dsn)
    try:
        assert "journal postgresql://" in "".join(first.log)
        ready = first.call("GET", "/readyz", who=None)
        assert ready.status_code == 200, ready.text
        assert password not in ready.text
        event = new_event()
        okta.add_user(event["actor"]["email"])  # type: ignore[attr-defined]
        accepted = first.post_event([event, event])  # one delivery, the same event twice
        assert accepted.status_code == 202, accepted.text
        assert [a["duplicate"] for a in accepted.json()["accepted"]] == [False, True]
        [run] = database.runs_of(first, event["id"])
        assert run["playbook"] == "contain-after-approval" and run["status"] == "waiting"
        answer = first.call("POST", f"/v1/runs/{run['run_id']}/steps/ask/answer",
                            who="alice@corp.example",
                            json_body={"decision": "approve", "comment": "go"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["run"]["status"] == "succeeded"
        assert okta.status_of(event["actor"]["email"]) == "SUSPENDED"  # type: ignore[attr-defined]
        listed = first.call("GET", "/v1/runs?status=succeeded").json()
        assert [r["run_id"] for r in listed["runs"]] == [run["run_id"]]
        audit = first.call("GET", "/v1/audit?since_seq=0")
        assert '"alice@corp.example"' in audit.text
        _no_password(first, password)
    finally:
        assert first.stop() == 0
    assert "Traceback" not in "".join(first.log)

    # Accepted, then killed before any is processed: every one is there after the restart.
    stopped = serve(service_files, database.dsn, CROWNGUARD_INTAKE_WORKERS="0")
    later = [new_event() for _ in range(5)]
    try:
        for one in later:
            assert stopped.post_event(one).status_code == 202
    finally:
        stopped.process.kill()  # SIGKILL: nothing flushed, nothing handed back
        stopped.process.wait(timeout=10)
    assert [s for e, s in database.intake() if e in {x["id"] for x in later}] == \
        ["pending"] * 5
    second = serve(service_files, database.dsn)
    try:
        for one in later:
            [again] = database.runs_of(second, one["id"])
            assert again["status"] == "waiting"
        assert {s for _, s in database.intake()} == {"done"}
        _no_password(second, password)
    finally:
        assert second.stop() == 0


def test_a_run_a_killed_replica_left_is_finished_by_the_next(
        service_files: dict[str, Any], service_fleet: MockFleet, database: PgServed) -> None:
    okta = service_fleet.get("okta")
    event = new_event(SLOW)
    okta.add_user(event["actor"]["email"])  # type: ignore[attr-defined]
    okta.inject("latency", seconds=3, path="/api/v1/users/*")
    first = serve(service_files, database.dsn)
    try:
        assert first.post_event(event).status_code == 202

        def running() -> Any:
            time.sleep(0.05)
            found = database.rows("SELECT r.run_id FROM runs r JOIN entries e ON e.run_id = "
                                  "r.run_id WHERE r.status = 'running' AND e.type = "
                                  "'step_started'")
            return found[0][0] if found else None

        run_id = wait_for(running, 20, "the run to start")
    finally:
        first.process.kill()
        first.process.wait(timeout=10)
    okta.clear_faults()
    second = serve(service_files, database.dsn)
    try:
        def finished() -> Any:
            shown = second.call("GET", f"/v1/runs/{run_id}").json()
            return shown if shown["status"] == "succeeded" else None

        wait_for(finished, 30, "the run to be taken over and finished")
        assert okta.status_of(event["actor"]["email"]) == "SUSPENDED"  # type: ignore[attr-defined]
        shown = second.call("GET", f"/v1/runs/{run_id}").json()
        assert shown["steps"]["suspend"]["status"] == "succeeded"
        assert database.rows("SELECT count(*) FROM runs") == [(1,)]
    finally:
        assert second.stop() == 0


def test_two_replicas_on_one_database_run_each_event_once(
        service_files: dict[str, Any], database: PgServed) -> None:
    replicas = [serve(service_files, database.dsn) for _ in range(2)]
    events = [new_event() for _ in range(12)]
    try:
        for n, event in enumerate(events):  # each replica gets half, and a duplicate of one
            assert replicas[n % 2].post_event(event).status_code == 202
        assert replicas[1].post_event(events[0]).json()["accepted"][0]["duplicate"] is True
        for event in events:
            [run] = database.runs_of(replicas[0], event["id"])
            assert run["status"] == "waiting"
        assert database.rows("SELECT count(*) FROM runs") == [(len(events),)]
        # Either replica shows every run: the journal is the one source of truth.
        listed = replicas[1].call("GET", "/v1/runs?status=waiting&limit=100").json()
        assert len(listed["runs"]) == len(events)
    finally:
        for replica in replicas:
            assert replica.stop() == 0
