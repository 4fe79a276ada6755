"""A kill -9 in the middle of a stream of events: every event answered 202 is processed after
the restart and ends in exactly one run, and no event starts two runs (accepted means never
lost, never doubled). On the SQLite journal and on a real PostgreSQL server.

The kill lands while items are between their dedupe claim and their run, or between their
run and being marked done: the restarted service takes each such item again, finds the claim
it left for its own (`Router.claim`), and starts the run or names the one already in the
journal. Every item's row, its claim and the process that finished it are written to
`items.log` in the test's folder, so a failure shows what became of each one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from servicetest import Served, new_event, start_service, wait_for

from crownguard.engine.triage.dedupe import dedupe_key

PLAYBOOK = "contain-after-approval"  # what a new_event() routes to: it waits for an answer
KILL_AFTER = 30

# (event_id, status, runs, outcome, owner, event) of every stored intake item
Rows = list[tuple[str, str, str, str | None, str | None, str]]


def _stream_and_kill(first: Served) -> list[str]:
    """Post from 4 threads; kill -9 once KILL_AFTER are accepted. The accepted event ids."""
    accepted: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def send() -> None:
        for _ in range(40):
            event = new_event()
            try:
                answer = first.post_event(event)
            except Exception:  # the service died under us: this one may or may not be in
                return
            if answer.status_code == 202:
                with lock:
                    accepted.append(event["id"])
                    if len(accepted) >= KILL_AFTER:
                        enough.set()

    senders = [threading.Thread(target=send) for _ in range(4)]
    for thread in senders:
        thread.start()
    assert enough.wait(60), "the service accepted too few events:\n" + "".join(first.log)
    first.process.kill()  # SIGKILL while requests are in flight and runs are being made
    first.process.wait(timeout=10)
    for thread in senders:
        thread.join(timeout=60)
    with lock:
        return list(accepted)


def _check(accepted: list[str], rows: Callable[[], Rows], runs: Callable[[], dict[str, str]],
           claims: Callable[[str], Any], first: Served, log: Path) -> None:
    def settled() -> bool:
        return all(row[1] in ("done", "failed") for row in rows())

    wait_for(settled, 60, "every stored event to be processed")
    stored = rows()
    with log.open("w") as out:  # what became of each item, for a failure to show
        for event_id, status, run_ids, outcome, owner, event in stored:
            by = "first" if owner and f", {first.process.pid}," in owner else "second"
            claim = claims(dedupe_key(PLAYBOOK, json.loads(event)))
            out.write(f"{event_id} {status} by the {by} process: runs {run_ids}; "
                      f"claim {claim}; {outcome}\n")
    report = log.read_text()
    assert set(accepted) <= {row[0] for row in stored}, "an event answered 202 was lost"
    assert all(row[1] == "done" for row in stored), report
    assert [row for row in stored if len(json.loads(row[2])) != 1] == [], report
    named = [run for row in stored for run in json.loads(row[2])]
    assert len(set(named)) == len(named), report  # no run is two items'
    assert set(runs()) == set(named), report  # and every run is one item's: none doubled
    # The runs the first process left are taken over and driven on to the approval.
    wait_for(lambda: set(runs().values()) == {"waiting"}, 60,
             f"every run to wait for its approval: {runs()}")
    again = [row for row in stored if row[4] and f", {first.process.pid}," not in row[4]]
    print(f"kill -9: {len(accepted)} accepted, {len(stored)} stored, {len(again)} finished by "
          f"the restarted process, {sum('continued' in (r[3] or '') for r in again)} of them "
          "with the run the killed one had made")


def test_a_kill_9_while_events_stream_in_loses_and_doubles_nothing(
        service_files: dict[str, Any], tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    first = start_service(service_files, journal)
    accepted = _stream_and_kill(first)
    second = start_service(service_files, journal)

    def rows() -> Rows:
        with sqlite3.connect(journal) as db:
            return db.execute("SELECT event_id, status, runs, outcome, owner, event FROM "
                              "service_intake ORDER BY id").fetchall()

    def runs() -> dict[str, str]:
        with sqlite3.connect(journal) as db:
            return dict(db.execute("SELECT run_id, status FROM runs").fetchall())

    def claims(key: str) -> Any:
        with sqlite3.connect(f"{journal}.dedupe.db") as db:
            return db.execute("SELECT at, run_id FROM starts WHERE key = ?", (key,)).fetchall()

    try:
        _check(accepted, rows, runs, claims, first, tmp_path / "items.log")
    finally:
        assert second.stop() == 0, "".join(second.log)


def test_a_kill_9_on_a_postgresql_journal_loses_and_doubles_nothing(
        service_files: dict[str, Any], postgres_dsn: str, tmp_path: Path) -> None:
    env = {"CROWNGUARD_JOURNAL": postgres_dsn}  # the DSN's password never in argv
    first = start_service(service_files, None, env=env)
    accepted = _stream_and_kill(first)
    second = start_service(service_files, None, env=env)

    def select(sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with psycopg.connect(postgres_dsn, autocommit=True) as db:
            return list(db.execute(sql, args).fetchall())

    def rows() -> Rows:
        return select("SELECT event_id, status, runs, outcome, owner, event FROM "
                      "service_intake ORDER BY id")

    def runs() -> dict[str, str]:
        return dict(select("SELECT run_id, status FROM runs"))

    def claims(key: str) -> Any:
        return select("SELECT at, run_id FROM dedupe_starts WHERE key = %s", (key,))

    try:
        _check(accepted, rows, runs, claims, first, tmp_path / "items.log")
    finally:
        assert second.stop() == 0, "".join(second.log)
