"""The audit trail covers what it exports and refuses what it cannot vouch for (issue 12, item 7).

Each test tampers with the SQLite file (or an export) directly, as someone with file access
would, and fails without the fix it keeps."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import runs
from crownguard.engine.cli import main
from crownguard.engine.errors import JournalError, RunStateError
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.journal import sqlite as journal_sqlite
from crownguard.engine.journal.audit import GENESIS, entry_hash
from crownguard.engine.journal.base import SCHEMA_VERSION
from crownguard.engine.journal.export import verify_jsonl
from crownguard.engine.kinds import ProblemKind, ResumeFailureKind, RunStatus
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

T0 = "2025-03-01T10:00:00.000000Z"

WAITS = """
name: ask-then-act
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Go?", approvers: [alice], timeout_seconds: 3600}
  - id: act
    action: core.noop
    needs: [ask]
"""


def event(run_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "run_id": run_id, "at": T0, **fields}


def fill(j: SQLiteJournal, runs_: tuple[str, ...] = ("run-a", "run-b")) -> None:
    for run_id in runs_:
        j.create_run(run_id, "contain", "name: contain\n", inputs={"event": {"x": 1}})
        j.append(event(run_id, "run_started", playbook="contain", inputs={}))
        j.append(event(run_id, "step_started", step="contain", attempt=1, inputs={}))
        j.append(event(run_id, "step_succeeded", step="contain", output={"changed": True}))
    j.record_approval(runs_[0], "ask", "approve", "lead@example.com", comment="ok")
    j.set_status(runs_[-1], "waiting")


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    j = SQLiteJournal(tmp_path / "journal.sqlite")
    fill(j)
    yield j
    j.close()


def raw(path: Path) -> sqlite3.Connection:
    """A plain connection to the file, as an attacker with file access would have."""
    return sqlite3.connect(path, isolation_level=None)


def kinds(problems: list[Any]) -> list[tuple[str, int | None]]:
    return [(str(p.kind), p.seq) for p in problems]


# at and type are chained ---------------------------------------------------------------------

@pytest.mark.parametrize(("column", "value"), [("at", "2025-01-01T00:00:00.000000Z"),
                                                ("type", "step_failed")])
def test_editing_an_entrys_at_or_type_is_found(journal: SQLiteJournal, column: str,
                                               value: str) -> None:
    with raw(journal.path) as db:
        db.execute(f"UPDATE entries SET {column} = ? WHERE seq = 3", (value,))
    assert kinds(journal.verify()) == [("edited", 3)]


def test_an_exported_lines_at_and_type_are_chained(journal: SQLiteJournal) -> None:
    out = io.StringIO()
    journal.export_jsonl(out)
    lines = out.getvalue().splitlines()
    assert verify_jsonl(io.StringIO(out.getvalue())) == []
    record = json.loads(lines[2])
    record["at"] = "2025-01-01T00:00:00Z"  # what the SIEM would file it under
    lines[2] = json.dumps(record)
    assert kinds(verify_jsonl(io.StringIO("\n".join(lines)))) == [("edited", 3)]


# an older journal stays verifiable -----------------------------------------------------------

def make_schema_1(path: Path) -> None:
    """Turn a journal into what crownguard wrote before schema 2: v 1 hashes, no v column."""
    with raw(path) as db:
        prev = GENESIS
        rows = db.execute("SELECT seq, kind, run_id, payload FROM entries ORDER BY seq")
        for seq, kind, run_id, payload in rows.fetchall():
            digest = entry_hash(seq, prev, kind, run_id, payload, version=1)
            db.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?",
                       (prev, digest, seq))
            prev = digest
        db.execute("UPDATE chain_head SET hash = ?", (prev,))
        db.execute("ALTER TABLE entries DROP COLUMN v")
        db.execute("DROP TABLE resume_failures")
        db.execute("PRAGMA user_version = 1")


def test_a_schema_1_journal_is_migrated_and_stays_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with SQLiteJournal(path) as j:
        fill(j)
    make_schema_1(path)
    with SQLiteJournal(path, read_only=True) as old:  # read as it is, not migrated
        assert old.verify() == [] and old.resume_failures() == {}
        assert len(old.list_runs()) == 2
    with SQLiteJournal(path) as j:
        assert j.verify() == []
        fill(j, ("run-c",))
        assert {e.seq: e.v for e in j.entries()} == {**dict.fromkeys(range(1, 11), 1),
                                                    **dict.fromkeys(range(11, 17), 2)}
        assert j.verify() == []
    with raw(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # An old event's time and type are held by its payload too: an edit is found.
        db.execute("UPDATE entries SET at = '2020-01-01T00:00:00Z' WHERE seq = 3")
    with SQLiteJournal(path) as j:
        [problem] = j.verify()
        assert (problem.kind, problem.seq) == (ProblemKind.EDITED, 3)
        assert "at differ from the payload's copy" in problem.detail


def test_rewriting_a_new_entry_with_the_old_formula_is_found(journal: SQLiteJournal) -> None:
    with raw(journal.path) as db:
        seq, prev, kind, run_id, payload = db.execute(
            "SELECT seq, prev_hash, kind, run_id, payload FROM entries WHERE seq = 3").fetchone()
        db.execute("UPDATE entries SET v = 1, type = 'step_failed', hash = ? WHERE seq = 3",
                   (entry_hash(seq, prev, kind, run_id, payload, version=1),))
    problems = journal.verify()
    assert ("edited", 3) in kinds(problems)
    assert any("older formula" in p.detail for p in problems)


# a damaged file is not intact ------------------------------------------------------------------

def test_a_zeroed_index_page_is_reported_damaged(journal: SQLiteJournal, capsys: Any) -> None:
    path = journal.path
    with raw(path) as db:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'entries_by_run'"
                          ).fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    journal.close()
    with open(path, "r+b") as fp:
        fp.seek((root - 1) * size)
        fp.write(b"\0" * size)
    assert main(["audit", "verify", "--journal", str(path)]) == 1
    out = capsys.readouterr().out
    assert "damaged: SQLite integrity check" in out and "journal intact" not in out
    with SQLiteJournal(path, read_only=True) as j:
        assert ProblemKind.DAMAGED in {p.kind for p in j.verify()}


# a forged answer is not acted on ---------------------------------------------------------------

@pytest.fixture
def host() -> PluginHost:
    return PluginHost.from_entry_points()


def waiting_run(host: PluginHost, journal: SQLiteJournal) -> str:
    record = Runner(host, journal=journal).run(parse_playbook(WAITS, host.actions), {})
    assert record["status"] == "waiting"
    return str(record["run_id"])


def test_a_forged_approvals_row_is_refused_and_reported(host: PluginHost,
                                                        tmp_path: Path) -> None:
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        run_id = waiting_run(host, journal)
        with raw(journal.path) as db:  # an approval that no chained entry recorded
            db.execute("INSERT INTO approvals (seq, run_id, step_id, decision, by_name, at, "
                       "accepted) VALUES (9999, ?, 'ask', 'approve', 'alice', ?, 1)",
                       (run_id, T0))
        with pytest.raises(RunStateError, match="do not match the audit chain"):
            runs.resume(journal, host, run_id)
        assert journal.get_run(run_id).status == RunStatus.WAITING  # nothing was acted on
        assert not [e for e in journal.events(run_id) if e.get("step") == "act"]
        assert journal.resume_failures()[run_id].kind == ResumeFailureKind.FORGED
        done = runs.resume_all(journal, host)
        assert done.resumed == [] and done.failed[0].kind == ResumeFailureKind.FORGED


def test_a_refused_answer_edited_into_an_accepted_one_is_refused(host: PluginHost,
                                                                 tmp_path: Path) -> None:
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        run_id = waiting_run(host, journal)
        refused = runs.answer(journal, host, run_id, "ask", "approve", by="mallory")
        assert not refused.accepted
        with raw(journal.path) as db:
            db.execute("UPDATE approvals SET accepted = 1, reason = NULL, by_name = 'alice'")
        with pytest.raises(RunStateError, match="differs from its chained entry in: by, "
                                                "accepted, reason"):
            runs.resume(journal, host, run_id)
        assert journal.get_run(run_id).status == RunStatus.WAITING


# read-only media -------------------------------------------------------------------------------

def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_commands_work_on_a_read_only_copy(journal: SQLiteJournal, tmp_path: Path,
                                                     capsys: Any) -> None:
    with raw(journal.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    copy = shelf / "journal.sqlite"
    shutil.copy(journal.path, copy)
    copy.chmod(0o444)
    shelf.chmod(0o555)
    before = digest(copy)
    try:
        export = tmp_path / "export.jsonl"
        for args in (["runs"], ["runs", "--json"], ["audit", "verify"], ["audit", "head"],
                     ["audit", "export", "--output", str(export)]):
            assert main([*args, "--journal", str(copy)]) == 0, args
        out = capsys.readouterr().out
        assert "journal intact: 10 entries" in out and "run-a" in out
        assert len(export.read_text().splitlines()) == 10
        assert digest(copy) == before
        assert stat.S_IMODE(copy.stat().st_mode) == 0o444
        with SQLiteJournal(copy, read_only=True) as j, \
                pytest.raises(JournalError, match="opened read-only"):
            j.set_status("run-a", "failed")
    finally:
        shelf.chmod(0o755)


def test_write_once_media_falls_back_to_immutable(journal: SQLiteJournal, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Where not even the WAL index can be made (mode=ro fails), immutable=1 reads the file."""
    with raw(journal.path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = tmp_path / "worm.sqlite"
    shutil.copy(journal.path, copy)
    real = sqlite3.connect
    modes: list[str] = []

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        modes.append(str(database).rpartition("?")[2])
        if "mode=ro" in str(database):
            raise sqlite3.OperationalError("unable to open database file")
        return real(database, *args, **kwargs)

    monkeypatch.setattr(journal_sqlite.sqlite3, "connect", connect)
    with SQLiteJournal(copy, read_only=True) as j:
        assert j.verify() == [] and len(j.list_runs()) == 2
    assert modes[0] == "mode=ro" and modes[-1] == "immutable=1"
    assert sorted(os.listdir(tmp_path)).count("worm.sqlite-wal") == 0
    # Entries still in a write-ahead log beside it would be missed: refused, saying why.
    (tmp_path / "worm.sqlite-wal").write_bytes(b"x" * 100)
    with pytest.raises(JournalError, match="checkpoint"):
        SQLiteJournal(copy, read_only=True)


# a garbage line in an export -----------------------------------------------------------------

@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"seq": "x"}', "NaN",
                                     '{"seq": 3, "prev_hash": "a", "hash": "b", "kind": "event"}'])
def test_a_garbage_export_line_is_a_reported_problem(journal: SQLiteJournal, tmp_path: Path,
                                                     capsys: Any, garbage: str) -> None:
    out = io.StringIO()
    journal.export_jsonl(out)
    lines = out.getvalue().splitlines()
    lines.insert(2, garbage)
    problems = verify_jsonl(io.StringIO("\n".join(lines)))
    assert problems[0].kind == ProblemKind.DAMAGED
    assert problems[0].detail.startswith("line 3: not a journal export record")
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify-export", str(path)]) == 1
    captured = capsys.readouterr()
    assert "line 3: not a journal export record" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_an_export_that_is_not_text_is_a_reported_problem(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b'{"seq": 1}\n\xff\xfe\x00garbage\n')
    assert main(["audit", "verify-export", str(path)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().out


def test_an_intact_export_verifies(journal: SQLiteJournal, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "export.jsonl"
    with open(path, "w") as fp:
        journal.export_jsonl(fp)
    seq, head = journal.head()
    assert main(["audit", "verify-export", str(path), "--anchor", f"{seq}:{head}"]) == 0
    assert "export intact" in capsys.readouterr().out
