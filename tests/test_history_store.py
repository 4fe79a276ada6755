"""SQLiteHistory: the risk history in the dedupe store's file gives the facts InMemoryHistory
gives for the same events, and other processes (and later commands) see it."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crownguard.engine.triage.detection import Detection, Method, ModelFormat
from crownguard.engine.triage.detection.formats import ModelMatch
from crownguard.engine.triage.events import (
    Actor,
    Destination,
    DestinationKind,
    FileInfo,
    ModelMovementEvent,
    Source,
    SourceKind,
)
from crownguard.engine.triage.risk import InMemoryHistory, RiskLevel
from crownguard.engine.triage.risk.store import SQLiteHistory
from crownguard.engine.triage.risk.types import RiskScore

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
MATCH = ModelMatch("mlflow", "fraud-model", "7", "model/model.safetensors", "restricted")
MODEL = Detection.verdict(0.99, ModelFormat.SAFETENSORS, Method.CONTENT, ["header"])
REGISTERED = Detection.verdict(1.0, ModelFormat.SAFETENSORS, Method.FINGERPRINT, ["sha"],
                               match=MATCH)
NOT_A_MODEL = Detection.verdict(0.0, None, Method.CONTENT, ["text"])
DETECTIONS = (MODEL, REGISTERED, NOT_A_MODEL)
PEOPLE = ("dana@acme.example", "lee@acme.example")
LEVELS = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL)


def make_event(person: str, day: int, size: int | None, number: int,
               incident: str | None = None, model: str | None = None) -> ModelMovementEvent:
    return ModelMovementEvent(
        id=f"e{number}", time=START + timedelta(days=day),
        actor=Actor(email=person), file=FileInfo(name="w.safetensors", size=size),
        destination=Destination(DestinationKind.REMOVABLE_MEDIA, "usb", False),
        source=Source(SourceKind.ENDPOINT, model=model), incident=incident)


def risk(level: RiskLevel) -> RiskScore:
    return RiskScore(50, level, ())


steps = st.lists(st.tuples(
    st.sampled_from(("record", "record", "record", "seed", "violations", "reopen")),
    st.sampled_from(PEOPLE),
    st.integers(0, 9),                                    # day
    st.one_of(st.none(), st.integers(0, 5_000)),          # size
    st.integers(0, 3),                                    # detection / level
    st.one_of(st.none(), st.sampled_from(("a1", "a2"))),  # incident
    st.one_of(st.none(), st.sampled_from(("m1", "m2"))),  # source model
), max_size=60)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps)
def test_sqlite_history_gives_the_facts_in_memory_history_gives(tmp_path_factory: pytest.TempPathFactory,
                                                                 sequence: list[tuple]) -> None:
    path = tmp_path_factory.mktemp("h") / "journal.dedupe.db"
    # A short window, so pruning (2 x baseline_days days kept) and baselines both happen.
    memory = InMemoryHistory(baseline_days=3, min_active_days=2)
    stored = SQLiteHistory(path, baseline_days=3, min_active_days=2)
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
            else:  # a new process on the file: everything comes from the file
                stored.close()
                stored = SQLiteHistory(path, baseline_days=3, min_active_days=2)
            for who in PEOPLE:
                for look_day in (day, day + 1):
                    probe = make_event(who, look_day, 1, -1, incident, model)
                    for found in DETECTIONS:
                        assert stored.facts(probe, found) == memory.facts(probe, found), \
                            (op, who, look_day)
    finally:
        stored.close()


feed = st.lists(st.tuples(
    st.sampled_from((0, 0, 1, 1, 2, 3, 7, -1, -4)),        # days since the event before
    st.sampled_from((None, 0, 5, 100, 7_000)),             # size
    st.integers(0, 2),                                     # detection
    st.sampled_from((0, 0, 1, 2, -1)),                     # the probe's day, from the event's
    st.booleans(),                                         # seed a volume before
), max_size=80)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from((2, 3, 5)), st.sampled_from((1, 2)), feed)
def test_a_baseline_slid_from_the_day_before_is_the_one_summed_again(
        days: int, active: int, sequence: list[tuple]) -> None:
    """A new day's baseline comes from the day before's window, its days in and out: it must
    be the mean of the kept active days in the window, as summing them again gives."""
    history = InMemoryHistory(baseline_days=days, min_active_days=active)
    person, day = PEOPLE[0], 0
    for number, (step, size, pick, ahead, seed) in enumerate(sequence):
        day = max(0, day + step)
        if seed:
            history.seed_volume(person, {(START + timedelta(days=day - 2)).date(): 50})
        history.record(make_event(person, day, size, number), DETECTIONS[pick],
                       risk(LEVELS[pick]))
        probe = make_event(person, day + ahead, 1, -1)
        today = probe.time.toordinal()
        kept = [size for kept_day, size in history._daily[person].items()
                if today - days <= kept_day < today and size > 0]
        expected = sum(kept) / len(kept) if len(kept) >= active else None
        assert history.facts(probe, MODEL).baseline_daily_bytes == expected, (number, today)


def test_another_connection_sees_each_record(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    first, second = SQLiteHistory(path), SQLiteHistory(path)
    try:
        probe = make_event(PEOPLE[0], 0, 10, 99, model="m1")
        assert second.facts(probe, MODEL).prior_violations == 0  # cached as empty
        first.record(make_event(PEOPLE[0], 0, 10, 1, model="m1"), MODEL, risk(RiskLevel.HIGH))
        facts = second.facts(probe, MODEL)
        assert (facts.bytes_today, facts.prior_model_accesses, facts.prior_violations) == \
            (10, 1, 1)
    finally:
        first.close()
        second.close()


def test_read_only_history_records_in_memory_only(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    writer = SQLiteHistory(path)
    writer.record(make_event(PEOPLE[0], 0, 10, 1), MODEL, risk(RiskLevel.HIGH))
    writer.close()
    reader = SQLiteHistory(path, writable=False)
    try:
        reader.record(make_event(PEOPLE[0], 0, 5, 2, incident="x"), MODEL, risk(RiskLevel.HIGH))
        facts = reader.facts(make_event(PEOPLE[0], 0, 1, 3), MODEL)
        assert (facts.bytes_today, facts.prior_violations) == (15, 2)  # its own and the file's
    finally:
        reader.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT bytes FROM history_daily").fetchall() == [(10,)]
        assert db.execute("SELECT count(*) FROM history_violations").fetchone() == (1,)


def test_read_only_history_creates_no_tables(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    sqlite3.connect(path).close()
    reader = SQLiteHistory(path, writable=False)
    try:
        reader.record(make_event(PEOPLE[0], 0, 5, 2), MODEL, risk(RiskLevel.HIGH))
        assert reader.facts(make_event(PEOPLE[0], 0, 1, 3), MODEL).bytes_today == 5
    finally:
        reader.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_threads_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    histories = [SQLiteHistory(path) for _ in range(4)]

    def work(history: SQLiteHistory, offset: int) -> None:
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


def test_seeded_baseline_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    writer = SQLiteHistory(path)
    writer.seed_volume("Dana@acme.example", {date(2026, 10, 28 + k): 1000 for k in range(3)})
    writer.close()
    reader = SQLiteHistory(path, writable=False)
    try:
        assert reader.facts(make_event(PEOPLE[0], 0, 1, 1), MODEL).baseline_daily_bytes == 1000
    finally:
        reader.close()


def test_days_beyond_twice_the_window_are_pruned_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    writer = SQLiteHistory(path, baseline_days=3, min_active_days=1)
    memory = InMemoryHistory(baseline_days=3, min_active_days=1)
    # Day 2, then six later days: day 2 is the oldest of seven and goes.
    for number, day in enumerate((2, 3, 4, 5, 6, 7, 8)):
        for history in (writer, memory):
            history.record(make_event(PEOPLE[0], day, 100 * day, number), MODEL, None)
    writer.close()
    with sqlite3.connect(path) as db:
        assert [row[0] - START.date().toordinal() for row in db.execute(
            "SELECT day FROM history_daily ORDER BY day")] == [3, 4, 5, 6, 7, 8]
    reader = SQLiteHistory(path, writable=False, baseline_days=3, min_active_days=1)
    try:
        probe = make_event(PEOPLE[0], 4, 1, 99)  # the window: days 1-3, of which only 3 is left
        assert reader.facts(probe, MODEL) == memory.facts(probe, MODEL)
        assert reader.facts(probe, MODEL).baseline_daily_bytes == 300
    finally:
        reader.close()


def test_the_file_names_nobody_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "j.dedupe.db"
    history = SQLiteHistory(path)
    history.record(make_event(PEOPLE[0], 0, 10, 1, model="m1"), MODEL, risk(RiskLevel.HIGH))
    history.seed_volume(PEOPLE[0], {date(2026, 10, 30): 5})
    history.add_violations(PEOPLE[0])
    history.close()
    assert b"dana" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def _record_in_a_process(path: str, offset: int) -> None:
    history = SQLiteHistory(path)
    for n in range(20):
        history.record(make_event(PEOPLE[1], 0, 1, offset + n, model="m2"), MODEL,
                       risk(RiskLevel.HIGH))
    history.close()


def test_processes_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    import multiprocessing

    path = str(tmp_path / "j.dedupe.db")
    SQLiteHistory(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_record_in_a_process, args=(path, 100 * k))
               for k in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    reader = SQLiteHistory(path, writable=False)
    try:
        facts = reader.facts(make_event(PEOPLE[1], 0, 1, -1, model="m2"), MODEL)
    finally:
        reader.close()
    assert (facts.bytes_today, facts.prior_model_accesses, facts.prior_violations) == \
        (40, 40, 40)


@pytest.mark.parametrize("writable", [True, False])
def test_an_event_seen_again_elsewhere_is_not_its_own_history(tmp_path: Path,
                                                              writable: bool) -> None:
    path = tmp_path / "j.dedupe.db"
    first = SQLiteHistory(path)
    event = make_event(PEOPLE[0], 0, 700, 1, model="m1")
    first.record(make_event(PEOPLE[0], 0, 300, 0, model="m1"), MODEL, None)
    before = first.facts(event, MODEL)
    first.record(event, MODEL, risk(RiskLevel.HIGH))
    first.close()
    again = SQLiteHistory(path, writable=writable)  # a rerun, another process
    try:
        assert again.facts(event, MODEL) == before
        again.record(event, MODEL, risk(RiskLevel.HIGH))  # recorded once, not twice
        later = again.facts(make_event(PEOPLE[0], 0, 1, 2, model="m1"), MODEL)
        assert (later.bytes_today, later.prior_model_accesses, later.prior_violations) == \
            (1000, 2, 1)
    finally:
        again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT bytes FROM history_daily").fetchall() == [(1000,)]
