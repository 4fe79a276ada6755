"""The PostgreSQL journal's writes in pipeline mode: a run's transactions cost two round trips
each (their reads; their writes with the COMMIT), and an error in the queued writes still
rolls the whole transaction back, with a message that says what to do."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from crownguard.engine.errors import JournalError
from crownguard.engine.journal.postgres import PostgresJournal

AT = "2026-01-01T00:00:00Z"


class Trips:
    """Counts round trips on a journal's only connection from libpq's protocol trace: a run
    of messages to the server answered by messages from it is one."""

    def __init__(self, journal: PostgresJournal, path: Path):
        self.journal, self.path, self.seen = journal, path, 0
        self.file = path.open("w")
        self._trace(True)

    def _trace(self, on: bool) -> None:
        with self.journal._connections().connection() as conn:
            if on:
                conn.pgconn.trace(self.file.fileno())
                conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
            else:
                conn.pgconn.untrace()  # flushes what libpq has buffered

    def take(self) -> int:
        """Round trips since the last call."""
        self._trace(False)
        trips, last, text = 0, "", self.path.read_text()
        self._trace(True)
        text, self.seen = text[self.seen:], len(text)
        for line in text.splitlines():
            way = line[:1]
            if way == "B" and last == "F":
                trips += 1
            if way in ("F", "B"):
                last = way
        return trips


@pytest.fixture
def journal(postgres_dsn: str) -> Iterator[PostgresJournal]:
    with PostgresJournal(postgres_dsn, pool_size=1) as opened:
        yield opened


def event(run_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "run_id": run_id, "at": AT, **fields}


def test_a_run_costs_two_round_trips_per_transaction(journal: PostgresJournal,
                                                     tmp_path: Path) -> None:
    trips = Trips(journal, tmp_path / "trace")
    journal.create_run("r1", "p", "name: p", inputs={"event": {}})
    assert trips.take() == 2
    journal.append_many([event("r1", "run_started"), event("r1", "step_started", step="a")])
    assert trips.take() == 2
    # A step's end also closes its wait and the run's end every wait: still two.
    journal.append_many([event("r1", "step_succeeded", step="a", output={}),
                         event("r1", "run_finished", status="succeeded")])
    assert trips.take() == 2
    assert journal.get_run("r1").status == "succeeded"
    assert [e["type"] for e in journal.events("r1")] == [
        "run_started", "step_started", "step_succeeded", "run_finished"]
    assert journal.verify() == []


def test_a_queued_write_that_fails_rolls_everything_back(journal: PostgresJournal,
                                                         postgres_dsn: str) -> None:
    journal.create_run("r1", "p", "name: p", inputs={})
    head = journal.head()
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:  # a stray entry past the head
        raw.execute("INSERT INTO entries (seq, prev_hash, hash, kind, run_id, type, at, "
                    "payload, v) VALUES (%s, 'x', 'y', 'event', 'r9', 't', %s, '{}', 2)",
                    (head[0] + 2, AT))
    with pytest.raises(JournalError, match=r"after the chain head exists already; run "
                       r"`crownguard audit verify`"):
        journal.append_many([event("r1", "run_started"), event("r1", "step_started",
                                                               step="a")])
    # Nothing of the round is left (its first entry, the head, the run's row) and the
    # connection is fine for the next transaction.
    assert journal.events("r1") == []
    assert journal.get_run("r1").updated_at != AT
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        assert raw.execute("SELECT seq FROM chain_head").fetchone() == (head[0],)
    assert journal.get_run("r1").run_id == "r1"


def test_the_server_hashes_each_entry_as_audit_verify_does(journal: PostgresJournal) -> None:
    # The server splices prev_hash and seq into the envelope the client rendered: a run id
    # that JSON escapes (quotes, a backslash, letters outside ASCII) must hash the same.
    run_id = 'rün "1" \\ ☃'
    journal.create_run(run_id, "p", "name: p", inputs={})
    seqs = journal.append_many([event(run_id, "run_started"),
                                event(run_id, "step_started", step="é"),
                                event(run_id, "step_waiting", step="é", expires_at=None)])
    assert seqs == [2, 3, 4]
    assert [w.seq for w in journal.open_waits(run_id)] == [4]  # the wait knows its entry
    assert journal.verify() == []
    entries = list(journal.entries(run_id))
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert all(e.prev_hash == before.hash for before, e in itertools.pairwise(entries))
