"""PostgresHistory: the risk history in the PostgreSQL journal's database gives the facts
InMemoryHistory (and SQLiteHistory) give for the same events, and every other connection
(another process, another machine) sees it. A real server: tests/pg_server.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from test_history_store import (
    DETECTIONS,
    LEVELS,
    MODEL,
    PEOPLE,
    START,
    make_event,
    risk,
    steps,
)

from crownguard.engine.errors import JournalError
from crownguard.engine.journal import open_journal
from crownguard.engine.triage.risk import InMemoryHistory, RiskLevel
from crownguard.engine.triage.risk.store_pg import PostgresHistory


@pytest.fixture
def dsn(postgres_dsn: str) -> Iterator[str]:
    open_journal(postgres_dsn).close()  # the journal's migrations make the tables
    yield postgres_dsn


def _empty(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("TRUNCATE history_daily, history_models, history_violations, "
                   "history_events")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_postgres_history_gives_the_facts_in_memory_history_gives(dsn: str,
                                                                   sequence: list[tuple]) -> None:
    _empty(dsn)
    memory = InMemoryHistory(baseline_days=3, min_active_days=2)
    stored = PostgresHistory(dsn, baseline_days=3, min_active_days=2)
    try:
        for number, (op, person, day, size, pick, incident, model) in enumerate(sequence):
            event = make_event(person, day, size, number, incident, model)
            detection = DETECTIONS[pick % 3]
            if op == "record":
                level = risk(LEVELS[pick])
                memory.record(event, detection, level, violation_level="high")
                stored.record(event, detection, level, violation_level="high")
            elif op == "seed":
                seed = {(START + timedelta(days=day - k)).date(): (size or 0) + k
                        for k in range(pick + 1)}
                memory.seed_volume(person, seed)
                stored.seed_volume(person, seed)
            elif op == "violations":
                memory.add_violations(person, pick)
                stored.add_violations(person, pick)
            else:  # a new process on the database: everything comes from it
                stored.close()
                stored = PostgresHistory(dsn, baseline_days=3, min_active_days=2)
            for who in PEOPLE:
                probe = make_event(who, day, 1, -1, incident, model)
                for found in DETECTIONS:
                    assert stored.facts(probe, found) == memory.facts(probe, found), (op, who)
    finally:
        stored.close()


def test_another_connection_sees_each_record_at_once(dsn: str) -> None:
    first, second = PostgresHistory(dsn), PostgresHistory(dsn)
    try:
        probe = make_event(PEOPLE[0], 0, 10, 99, model="m1")
        assert second.facts(probe, MODEL).prior_violations == 0
        first.record(make_event(PEOPLE[0], 0, 10, 1, model="m1"), MODEL, risk(RiskLevel.HIGH))
        facts = second.facts(probe, MODEL)
        assert (facts.bytes_today, facts.prior_model_accesses, facts.prior_violations) == \
            (10, 1, 1)
    finally:
        first.close()
        second.close()


def test_read_only_history_records_in_memory_only(dsn: str) -> None:
    writer = PostgresHistory(dsn)
    writer.record(make_event(PEOPLE[0], 0, 10, 1), MODEL, risk(RiskLevel.HIGH))
    writer.seed_volume(PEOPLE[1], {date(2026, 10, 28 + k): 1000 for k in range(3)})
    writer.close()
    reader = PostgresHistory(dsn, writable=False)
    try:
        reader.record(make_event(PEOPLE[0], 0, 5, 2, incident="x"), MODEL, risk(RiskLevel.HIGH))
        facts = reader.facts(make_event(PEOPLE[0], 0, 1, 3), MODEL)
        assert (facts.bytes_today, facts.prior_violations) == (15, 2)  # its own and the db's
        assert reader.facts(make_event(PEOPLE[1], 0, 1, 4), MODEL).baseline_daily_bytes == 1000
    finally:
        reader.close()
    with psycopg.connect(dsn) as db:
        assert db.execute("SELECT bytes FROM history_daily WHERE bytes < 1000").fetchall() == \
            [(10,)]
        assert db.execute("SELECT count(*) FROM history_violations").fetchone() == (1,)


def test_threads_on_several_connections_lose_nothing(dsn: str) -> None:
    histories = [PostgresHistory(dsn) for _ in range(4)]

    def work(history: PostgresHistory, offset: int) -> None:
        for n in range(25):
            history.record(make_event(PEOPLE[0], 0, 1, offset + n, model="m1"), MODEL, None)

    threads = [threading.Thread(target=work, args=(h, 100 * k)) for k, h in enumerate(histories)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    facts = histories[0].facts(make_event(PEOPLE[0], 0, 1, -1, model="m1"), MODEL)
    for history in histories:
        history.close()
    assert (facts.bytes_today, facts.prior_model_accesses) == (100, 100)


@pytest.mark.parametrize("writable", [True, False])
def test_an_event_seen_again_elsewhere_is_not_its_own_history(dsn: str, writable: bool) -> None:
    first = PostgresHistory(dsn)
    event = make_event(PEOPLE[0], 0, 700, 1, model="m1")
    first.record(make_event(PEOPLE[0], 0, 300, 0, model="m1"), MODEL, None)
    before = first.facts(event, MODEL)
    first.record(event, MODEL, risk(RiskLevel.HIGH))
    first.close()
    again = PostgresHistory(dsn, writable=writable)
    try:
        assert again.facts(event, MODEL) == before
        again.record(event, MODEL, risk(RiskLevel.HIGH))  # recorded once, not twice
        later = again.facts(make_event(PEOPLE[0], 0, 1, 2, model="m1"), MODEL)
        assert (later.bytes_today, later.prior_model_accesses, later.prior_violations) == \
            (1000, 2, 1)
    finally:
        again.close()


def test_the_database_names_nobody_in_clear_and_errors_hide_the_password(
        dsn: str, postgres_server: object) -> None:
    history = PostgresHistory(dsn)
    history.record(make_event(PEOPLE[0], 0, 10, 1, model="m1"), MODEL, risk(RiskLevel.HIGH))
    history.add_violations(PEOPLE[0])
    history.close()
    with psycopg.connect(dsn) as db:
        dump = str([db.execute(f"SELECT * FROM {table}").fetchall() for table in (
            "history_daily", "history_models", "history_violations", "history_events")])
    assert "dana" not in dump
    password = str(getattr(postgres_server, "password", "")) or None
    if password:
        with pytest.raises(JournalError) as caught:
            PostgresHistory(dsn.replace(password, "wrong-password-77"))
        assert password not in str(caught.value) and "wrong-password-77" not in str(caught.value)
