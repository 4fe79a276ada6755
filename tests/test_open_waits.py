"""The journals' open waits (engine/journal/waits.py): a wait's deadline is indexed in the
transaction of its step_waiting event and dropped with the step's or the run's end, on both
journals; a journal written before the table existed gets it filled from its chain."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from journal_kinds import KINDS, open_kind, raw

from crownguard.engine.journal import Journal, SQLiteJournal
from crownguard.engine.journal.waits import OpenWait, deadline
from crownguard.engine.kinds import RunStatus

T0 = "2025-03-01T10:00:00.000000Z"


@pytest.fixture(params=KINDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    j = open_kind(request.param, request, tmp_path)
    yield j
    j.close()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def waiting_run(journal: Journal, run_id: str, *steps: tuple[str, str | None]) -> None:
    """A run waiting on each (step, expires_at) as the runner journals it."""
    journal.create_run(run_id, "pb", "name: pb\n", inputs={})
    journal.append({"type": "run_started", "run_id": run_id, "at": T0})
    for step, expires in steps:
        journal.append({"type": "step_started", "run_id": run_id, "at": T0, "step": step,
                        "attempt": 1})
        journal.append({"type": "step_waiting", "run_id": run_id, "at": T0, "step": step,
                        "reason": "ask", "expires_at": expires, "data": {}})
    journal.set_status(run_id, RunStatus.WAITING)


def test_a_wait_is_indexed_with_its_event_and_dropped_with_its_end(journal: Journal) -> None:
    now = datetime.now(UTC)
    soon, later = now + timedelta(seconds=5), now + timedelta(hours=1)
    waiting_run(journal, "run-a", ("ask", _iso(soon)), ("forever", None))
    waiting_run(journal, "run-b", ("ask", _iso(later)))
    waits = journal.open_waits("run-a")
    assert [(w.step_id, w.expires_at) for w in waits] == [("ask", soon.timestamp()),
                                                          ("forever", None)]
    assert journal.next_wait_deadline() == soon.timestamp()
    assert journal.due_waits(now.timestamp()) == []
    assert [w.run_id for w in journal.due_waits(later.timestamp())] == ["run-a", "run-b"]
    # Pages: after the first one, the next.
    first = journal.due_waits(later.timestamp(), limit=1)
    assert [w.run_id for w in first] == ["run-a"]
    assert [w.run_id for w in journal.due_waits(later.timestamp(), after=first[0])] == \
        ["run-b"]
    # The step ends: its wait is gone, the other stays.
    journal.claim("run-a")
    journal.append({"type": "step_failed", "run_id": "run-a", "at": T0, "step": "ask",
                    "error": "no answer"})
    journal.set_status("run-a", RunStatus.WAITING)
    assert [w.step_id for w in journal.open_waits("run-a")] == ["forever"]
    assert journal.next_wait_deadline() == later.timestamp()
    # The run ends: all of its waits are gone.
    journal.claim("run-b")
    journal.append({"type": "run_cancelled", "run_id": "run-b", "at": T0, "reason": "x"})
    assert journal.open_waits("run-b") == [] and journal.next_wait_deadline() is None


def test_only_waiting_runs_are_due(journal: Journal) -> None:
    past = _iso(datetime.now(UTC) - timedelta(minutes=1))
    waiting_run(journal, "run-a", ("ask", past))
    assert [w.run_id for w in journal.due_waits(time.time())] == ["run-a"]
    journal.claim("run-a")  # someone is driving it: it settles its own waits
    assert journal.due_waits(time.time()) == []
    assert journal.next_wait_deadline() is not None  # still its deadline to wake up at


def test_answers_not_acted_on_are_found_once(journal: Journal) -> None:
    waiting_run(journal, "run-a", ("ask", None))
    waiting_run(journal, "run-b", ("ask", None))
    journal.record_approval("run-a", "ask", "approve", "alice")
    journal.record_approval("run-b", "ask", "approve", "mallory", accepted=False,
                            reason="not an approver")
    found, last = journal.answered_waits(0)
    assert [(w.run_id, w.step_id) for w in found] == [("run-a", "ask")]
    assert last == max(a.seq for a in journal.approvals("run-b"))
    assert journal.answered_waits(last) == ([], last)
    # An answer given before the step waited (an earlier wait of it) does not count.
    journal.claim("run-a")
    journal.append({"type": "step_succeeded", "run_id": "run-a", "at": T0, "step": "ask"})
    assert journal.answered_waits(0)[0] == []


def test_a_schema_2_journal_gets_its_open_waits_from_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    soon = datetime.now(UTC) + timedelta(minutes=5)
    with SQLiteJournal(path) as j:
        waiting_run(j, "run-a", ("ask", _iso(soon)), ("done", None))
        j.claim("run-a")
        j.append({"type": "step_succeeded", "run_id": "run-a", "at": T0, "step": "done"})
        j.set_status("run-a", RunStatus.WAITING)
        waiting_run(j, "run-b", ("ask", _iso(soon)))
        j.claim("run-b")
        j.append({"type": "run_finished", "run_id": "run-b", "at": T0, "status": "failed"})
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE open_waits")
        db.execute("PRAGMA user_version = 2")
    with SQLiteJournal(path, read_only=True) as old:  # read as it is: no table, no waits
        assert old.open_waits("run-a") == [] and old.next_wait_deadline() is None
    with SQLiteJournal(path) as j:
        assert j.open_waits("run-a") == [OpenWait("run-a", "ask", j.open_waits("run-a")[0].seq,
                                                  soon.timestamp())]
        assert j.open_waits("run-b") == [] and j.next_wait_deadline() == soon.timestamp()
        assert j.verify() == []


def test_postgres_migration_fills_the_open_waits(request: pytest.FixtureRequest,
                                                 tmp_path: Path) -> None:
    from crownguard.engine.journal.postgres import PostgresJournal
    from crownguard.engine.journal.postgres_schema import _MIGRATIONS

    soon = datetime.now(UTC) + timedelta(minutes=5)
    with open_kind("postgres", request, tmp_path) as j:
        assert isinstance(j, PostgresJournal)
        waiting_run(j, "run-a", ("ask", _iso(soon)), ("done", None), ("open", ""))
        j.claim("run-a")
        j.append({"type": "step_succeeded", "run_id": "run-a", "at": T0, "step": "done"})
        j.set_status("run-a", RunStatus.WAITING)
        with raw(j) as db:  # as a schema 1 database: no table, then migration 2 again
            db.execute("DROP TABLE open_waits")
            db.execute("DELETE FROM crownguard_schema WHERE version = 2")
            for statement in _MIGRATIONS[2].split(";"):
                if statement.strip():
                    db.execute(statement)
        waits = {w.step_id: w.expires_at for w in j.open_waits("run-a")}
        assert waits == {"ask": soon.timestamp(), "open": None}


def test_deadlines_read_as_the_runner_reads_them() -> None:
    assert deadline("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert deadline("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert deadline(None) is None and deadline("") is None and deadline("soon") is None
