"""Many writers, one chain: threads and processes appending at once keep it whole."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from journal_kinds import KINDS, location_for

from crownguard.engine.journal import Journal, open_journal

EVENTS = 40

WRITER = """
import sys
from crownguard.engine.journal import open_journal

path, prefix, runs, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.stdin.readline()  # start together
journal = open_journal(path)
for r in range(runs):
    run_id = f"{prefix}-{r}"
    journal.create_run(run_id, "p", "name: p", inputs={})
    for i in range(events):
        journal.append({"type": "step_started", "run_id": run_id, "at": "t", "step": "s",
                        "attempt": i})
journal.close()
"""


def append_run(journal: Journal, run_id: str, barrier: threading.Barrier,
               errors: list[BaseException]) -> None:
    try:
        journal.create_run(run_id, "p", "name: p", inputs={})
        barrier.wait()
        for i in range(EVENTS):
            journal.append({"type": "step_started", "run_id": run_id, "at": "t", "step": "s",
                            "attempt": i})
    except BaseException as exc:
        errors.append(exc)
        barrier.abort()


def run_threads(journal: Journal, run_ids: list[str]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(run_ids), timeout=60)
    threads = [threading.Thread(target=append_run, args=(journal, r, barrier, errors))
               for r in run_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def check(journal: Journal, run_ids: list[str], events: int) -> None:
    assert journal.verify() == []
    entries = list(journal.entries())
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert len(entries) == len(run_ids) * (events + 1)
    for run_id in run_ids:
        assert [e["attempt"] for e in journal.events(run_id)] == list(range(events))


@pytest.mark.parametrize("kind", KINDS)
def test_eight_threads_append_to_one_chain(kind: str, request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    journal = open_journal(location_for(kind, request, tmp_path), synchronous="NORMAL")
    run_ids = [f"t{i}" for i in range(8)]
    run_threads(journal, run_ids)
    check(journal, run_ids, EVENTS)
    journal.close()


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_and_threads_append_to_one_chain(kind: str, request: pytest.FixtureRequest,
                                                       tmp_path: Path) -> None:
    # Created by whoever comes first: PostgreSQL's schema migrations, too, run under a lock.
    path = location_for(kind, request, tmp_path / "fresh")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, f"p{n}", "2",
                               str(EVENTS)], stdin=subprocess.PIPE, text=True)
             for n in range(2)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    journal = open_journal(path, synchronous="NORMAL")
    try:
        run_threads(journal, [f"t{i}" for i in range(4)])
    finally:
        outcomes = [proc.wait(timeout=120) for proc in procs]
    assert outcomes == [0, 0]
    run_ids = [f"p{n}-{r}" for n in range(2) for r in range(2)] + [f"t{i}" for i in range(4)]
    check(journal, run_ids, EVENTS)
    journal.close()
