"""Both intake stores behind one interface: the journal's SQLite file and its PostgreSQL
database (a real server, tests/pg_server.py). Dedupe, take / finish / release, group commit,
items a dead process took, interactions, cursors and dead letters; on PostgreSQL also several
processes taking from one table and leases that lapse."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.errors import JournalError
from crownguard.engine.journal import open_journal
from crownguard.engine.service.intake import DeadLetter, IntakeStore, SQLiteIntakeStore
from crownguard.engine.service.intake_pg import PostgresIntakeStore

KINDS = ["sqlite", "postgres"]


def location(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh journal of `kind` (migrated: its tables exist), by what opens it."""
    where = (str(tmp_path / "j.sqlite") if kind == "sqlite"
             else str(request.getfixturevalue("postgres_dsn")))
    open_journal(where).close()
    return where


def open_store(where: str, **options: Any) -> IntakeStore:
    if where.startswith("postgresql://"):
        return PostgresIntakeStore(where, **options)
    return SQLiteIntakeStore(where)


@pytest.fixture(params=KINDS)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return location(request.param, request, tmp_path)


@pytest.fixture
def store(where: str) -> Iterator[IntakeStore]:
    opened = open_store(where)
    yield opened
    opened.close()


def test_the_intake_dedupes_takes_finishes_and_releases(store: IntakeStore) -> None:
    accepted = store.add("siem", [("e1", {"n": 1}), ("e2", {"n": 2}), ("e1", {"n": 1})])
    assert [(a.event_id, a.duplicate) for a in accepted] == [
        ("e1", False), ("e2", False), ("e1", True)]
    assert [a.duplicate for a in store.add("siem", [("e2", {"n": 2})])] == [True]
    assert [a.duplicate for a in store.add("other", [("e2", {"n": 2})])] == [False]
    [first] = store.take(1)
    assert (first.source, first.event_id, first.event) == ("siem", "e1", {"n": 1})
    assert store.counts() == {"pending": 2, "started": 1, "done": 0, "failed": 0}
    store.finish(first.id, ["run-1"])
    second, third = store.take(5)
    assert [second.event_id, third.event_id] == ["e2", "e2"]
    assert store.take(5) == []  # taken by this live process: not taken twice
    store.release([second.id])
    assert [i.id for i in store.take(5)] == [second.id]
    store.finish(third.id, [], error="no playbook")
    assert store.counts() == {"pending": 0, "started": 1, "done": 1, "failed": 1}
    store.ping()


def test_concurrent_adds_share_commits_and_find_duplicates_across_them(
        store: IntakeStore) -> None:
    results: dict[int, Any] = {}
    start = threading.Barrier(16)

    def add(n: int) -> None:
        start.wait()
        results[n] = store.add("siem", [(f"e{n}", {"n": n}), ("shared", {"n": -1})])

    threads = [threading.Thread(target=add, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(not results[n][0].duplicate for n in range(16))
    assert sorted(r[1].duplicate for r in results.values()) == [False] + [True] * 15
    assert store.counts()["pending"] == 17


def test_a_poller_page_commits_its_cursor_and_dead_letters_with_its_events(
        store: IntakeStore) -> None:
    assert store.cursor("incydr") is None
    letter = DeadLetter("k1", None, "no file", {"raw": 1})
    store.add("incydr", [("e1", {})], poll_cursor=("incydr", "2026-01-01"), dead=[letter])
    store.add("incydr", [], poll_cursor=("incydr", "2026-01-02"), dead=[letter])  # once each
    assert store.cursor("incydr") == "2026-01-02"
    [dead] = store.dead_letters()
    assert (dead["source"], dead["reason"], dead["event"]) == ("incydr", "no file", {"raw": 1})
    assert store.dead_letters(after=dead["id"]) == []
    assert store.dead_letter_counts() == {"incydr": 1}


def test_interactions_are_stored_once_and_taken_once(store: IntakeStore) -> None:
    assert store.add_interaction("slack", "digest-1", {"a": 1}) is True
    assert store.add_interaction("slack", "digest-1", {"a": 1}) is False
    assert store.add_interaction("slack", "digest-2", {"a": 2}) is True
    taken = store.take_interaction()
    assert taken is not None and taken[1:] == ("slack", {"a": 1})
    store.finish_interaction(taken[0])
    again = store.take_interaction()
    assert again is not None and again[2] == {"a": 2}
    assert store.take_interaction() is None
    store.finish_interaction(again[0], error="unknown run")


def test_what_a_dead_process_took_is_pending_again(where: str, store: IntakeStore) -> None:
    store.add("siem", [("e1", {}), ("e2", {})])
    store.add_interaction("slack", "d", {"x": 1})
    opener = ("PostgresIntakeStore" if where.startswith("postgresql://")
              else "SQLiteIntakeStore")
    child = subprocess.run([sys.executable, "-c", (
        "from crownguard.engine.service.intake import SQLiteIntakeStore\n"
        "from crownguard.engine.service.intake_pg import PostgresIntakeStore\n"
        f"s = {opener}({where!r})\n"
        "print(len(s.take(5)), s.take_interaction() is not None)\n"
        "import os; os._exit(0)")],  # exits holding them, as a kill -9 would
        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert child.stdout.split() == ["2", "True"], child.stderr
    assert sorted(i.event_id for i in store.take(5)) == ["e1", "e2"]
    taken = store.take_interaction()
    assert taken is not None and taken[2] == {"x": 1}


# PostgreSQL only -----------------------------------------------------------------------------


def test_processes_on_one_database_never_take_the_same_item(postgres_dsn: str) -> None:
    open_journal(postgres_dsn).close()
    stores = [PostgresIntakeStore(postgres_dsn) for _ in range(4)]
    try:
        stores[0].add("siem", [(f"e{n}", {"n": n}) for n in range(200)])
        for n in range(20):
            stores[0].add_interaction("slack", f"k{n}", {"n": n})
        taken: list[list[int]] = [[] for _ in stores]
        clicks: list[list[int]] = [[] for _ in stores]
        start = threading.Barrier(len(stores))

        def drain(n: int) -> None:
            start.wait()
            while batch := stores[n].take(3):
                taken[n].extend(item.id for item in batch)
            while (click := stores[n].take_interaction()) is not None:
                clicks[n].append(click[0])

        threads = [threading.Thread(target=drain, args=(n,)) for n in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        every = [i for ids in taken for i in ids]
        assert len(every) == len(set(every)) == 200
        assert sum(1 for ids in taken if ids) > 1  # they took side by side, not one after all
        every_click = [i for ids in clicks for i in ids]
        assert len(every_click) == len(set(every_click)) == 20
    finally:
        for store in stores:
            store.close()


def test_a_lapsed_lease_frees_the_item_and_a_live_one_is_renewed(postgres_dsn: str) -> None:
    open_journal(postgres_dsn).close()
    holder = PostgresIntakeStore(postgres_dsn, lease_seconds=1.5)
    other = PostgresIntakeStore(postgres_dsn)
    try:
        holder.add("siem", [("e1", {})])
        [item] = holder.take(1)
        time.sleep(2.5)  # the heartbeat renews it every 0.5 s: still held
        assert other.take(1) == []
        holder._stopping.set()  # the holder stops renewing, as a hung or cut-off one does
        holder._heartbeat.join()
        time.sleep(2.0)
        assert [i.id for i in other.take(1)] == [item.id]
    finally:
        holder.close()
        other.close()


def test_a_database_without_the_tables_is_refused_and_no_password_shows(
        postgres_dsn: str, postgres_server: Any) -> None:
    with pytest.raises(JournalError, match="journal migrate") as caught:
        PostgresIntakeStore(postgres_dsn)
    wrong = postgres_dsn.replace(postgres_server.password, "not-the-password-42")
    with pytest.raises(JournalError) as refused:
        PostgresIntakeStore(wrong)
    for message in (str(caught.value), str(refused.value)):
        assert postgres_server.password not in message and "not-the-password-42" not in message
