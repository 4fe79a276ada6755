"""The intake's group commit: concurrent requests share a transaction, each answered only once
its own items are committed, duplicates still found across the requests of one commit."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from crownguard.engine.service.intake import SQLiteIntakeStore


def test_concurrent_adds_are_all_committed_once(tmp_path: Path, monkeypatch: Any) -> None:
    store = SQLiteIntakeStore(tmp_path / "j.sqlite")
    commits = []
    original = store._commit

    def counting(batches: list[Any]) -> None:
        commits.append(len(batches))
        original(batches)

    monkeypatch.setattr(store, "_commit", counting)
    results: dict[int, Any] = {}
    start = threading.Barrier(24)

    def add(n: int) -> None:
        start.wait()
        # Every request sends its own event and one that all of them share.
        results[n] = store.add("siem", [(f"e{n}", {"n": n}), ("shared", {"n": -1})])

    threads = [threading.Thread(target=add, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(commits) == 24  # every request committed exactly once
    assert all(not results[n][0].duplicate for n in range(24))
    assert sorted(r[1].duplicate for r in results.values()) == [False] + [True] * 23
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        assert db.execute("SELECT count(*) FROM service_intake").fetchone() == (25,)
    store.close()


def test_a_failed_commit_fails_every_request_in_it(tmp_path: Path) -> None:
    store = SQLiteIntakeStore(tmp_path / "j.sqlite")
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        db.execute("DROP TABLE service_intake")
    try:
        store.add("siem", [("e1", {})])
    except Exception as exc:
        assert "intake table" in str(exc) and "no such table" in str(exc)
    else:
        raise AssertionError("the add did not fail")
    store.close()
