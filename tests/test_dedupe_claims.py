"""The dedupe stores note the run a claim started and release a claim whose run could not
start; a store from before runs were noted is read as it is and upgraded when written."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.triage.dedupe import InMemoryDedupe, ScratchDedupe, SQLiteDedupe


def stores(tmp_path: Path) -> list[Any]:
    return [InMemoryDedupe(), SQLiteDedupe(tmp_path / "d.db"), ScratchDedupe(InMemoryDedupe())]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_claim_names_its_run_and_a_release_frees_it(tmp_path: Path, index: int) -> None:
    store = stores(tmp_path)[index]
    assert store.claim("k", 100.0, 3600) is None
    assert store.run_of("k") is None
    store.started("k", 100.0, "run-1")
    assert store.run_of("k") == "run-1"
    assert store.claim("k", 200.0, 3600) == 100.0  # a duplicate, naming run-1
    store.release("k", 200.0)  # not the claim that was made: nothing changes
    assert store.last_start("k", 100.0, 3600) == 100.0
    store.release("k", 100.0)
    assert store.last_start("k", 100.0, 3600) is None and store.run_of("k") is None
    assert store.claim("k", 100.0, 3600) is None  # the same event can start it again
    assert store.run_of("k") is None  # a new claim has no run until one is noted


def test_a_scratch_store_releases_only_its_own_claims() -> None:
    real = InMemoryDedupe()
    real.claim("k", 100.0, 3600)
    real.started("k", 100.0, "run-1")
    scratch = ScratchDedupe(real)
    assert scratch.run_of("k") == "run-1"
    scratch.release("k", 100.0)
    assert real.last_start("k", 100.0, 3600) == 100.0


def test_a_store_from_before_runs_were_noted_is_read_unchanged_and_upgraded_on_write(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE starts (key TEXT PRIMARY KEY, at REAL NOT NULL)")
        db.execute("INSERT INTO starts VALUES ('k', 100.0)")
    db.close()
    reader = SQLiteDedupe(path)
    assert reader.run_of("k") is None and reader.last_start("k", 100.0, 3600) == 100.0
    reader.close()
    with sqlite3.connect(path) as db:
        assert [r[1] for r in db.execute("PRAGMA table_info(starts)")] == ["key", "at"]
    db.close()
    writer = SQLiteDedupe(path)
    writer.started("k", 100.0, "run-1")
    assert writer.run_of("k") == "run-1"
    writer.close()
