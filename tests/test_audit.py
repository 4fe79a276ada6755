"""The tamper-evident audit trail: the hash chain, verify() and the JSONL export."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from journal_kinds import KINDS, open_kind, raw

from crownguard.engine.journal import Journal
from crownguard.engine.journal.audit import (
    GENESIS,
    ChainProblem,
    canonical_json,
    canonical_payload,
    entry_hash,
)
from crownguard.engine.journal.export import read_jsonl, verify_jsonl
from crownguard.engine.kinds import ProblemKind

T0 = "2025-03-01T10:00:00.000000Z"


def event(run_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "run_id": run_id, "at": T0, **fields}


@pytest.fixture(params=KINDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Journal:
    """A journal (SQLite, PostgreSQL) with two runs, their events, an approval and a status
    change: 12 entries."""
    j = open_kind(request.param, request, tmp_path)
    for run_id in ("run-a", "run-b"):
        j.create_run(run_id, "contain-and-revoke", "name: contain-and-revoke\n",
                     inputs={"event": {"actor": "dev@example.com"}})
        j.append(event(run_id, "run_started", playbook="contain-and-revoke", inputs={}))
        j.append(event(run_id, "step_started", step="contain", attempt=1,
                       inputs={"device_id": "d-1"}))
        j.append(event(run_id, "step_succeeded", step="contain", output={"changed": True}))
    j.record_approval("run-a", "approve", "approve", "lead@example.com", comment="ok")
    j.set_status("run-b", "waiting")
    j.append(event("run-a", "run_finished", status="succeeded"))
    j.append(event("run-b", "step_started", step="contain", attempt=2, inputs={}))
    yield j
    j.close()


def kinds(problems: list[ChainProblem]) -> list[tuple[str, int | None]]:
    return [(str(p.kind), p.seq) for p in problems]


# the hash ----------------------------------------------------------------------------------------

def test_entry_hash_is_sha256_of_the_canonical_envelope() -> None:
    payload = {"b": [1, 2.5, None], "a": "é\u2028", "n": {"z": True, "y": "x"}}
    text = canonical_payload(payload)
    envelope = {"seq": 7, "prev_hash": GENESIS, "kind": "event", "run_id": "r1",
                "payload": json.loads(text), "type": "step_started", "at": T0, "v": 2}
    expected = hashlib.sha256(canonical_json(envelope).encode()).hexdigest()
    assert entry_hash(7, GENESIS, "event", "r1", text, type="step_started", at=T0) == expected
    assert canonical_json(envelope).startswith('{"at":"2025-03-01T10:00:00.000000Z","kind":'
                                               '"event","payload":{"a":"\\u00e9')
    # Entries written before schema 2 (v 1) hashed the envelope without at, type and v.
    old = {k: envelope[k] for k in ("seq", "prev_hash", "kind", "run_id", "payload")}
    assert entry_hash(7, GENESIS, "event", "r1", text, version=1) == \
        hashlib.sha256(canonical_json(old).encode()).hexdigest()


def test_canonical_payload_reencodes_to_itself() -> None:
    # Integer keys, tuples: stored as a reader will see them, so a re-encoding hashes the same.
    text = canonical_payload({2: "two", 10: "ten", "t": (1, 2)})
    assert text == '{"10":"ten","2":"two","t":[1,2]}'
    assert canonical_json(json.loads(text)) == text


def test_chain_links_every_entry_to_the_one_before(journal: Journal) -> None:
    entries = list(journal.entries())
    assert [e.seq for e in entries] == list(range(1, 13))
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    assert all(e.computed_hash() == e.hash for e in entries)
    assert [e.kind for e in entries[:2]] == ["run", "event"]
    assert {e.type for e in entries} >= {"run_created", "approval", "status", "run_finished"}
    assert journal.head() == (12, entries[-1].hash)


def test_an_intact_journal_verifies_clean(journal: Journal) -> None:
    assert journal.verify() == []
    assert journal.verify(anchor=journal.head()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_journal_verifies_clean(kind: str, request: pytest.FixtureRequest,
                                         tmp_path: Path) -> None:
    with open_kind(kind, request, tmp_path) as j:
        assert j.head() == (0, GENESIS)
        assert j.verify() == []


# tampering ---------------------------------------------------------------------------------------

def test_edited_payload_is_named(journal: Journal) -> None:
    with raw(journal) as db:
        payload = db.execute("SELECT payload FROM entries WHERE seq = 4").fetchone()[0]
        db.execute("UPDATE entries SET payload = ? WHERE seq = 4",
                   (payload.replace('"changed":true', '"changed":false'),))
    problems = journal.verify()
    assert kinds(problems) == [("edited", 4)]
    assert problems[0].run_id == "run-a" and problems[0].type == "step_succeeded"
    assert str(problems[0]).startswith("seq 4 (run run-a, step_succeeded): edited:")


def test_edited_and_rehashed_entry_is_found_by_the_next_link(journal: Journal) -> None:
    with raw(journal) as db:
        row = db.execute("SELECT prev_hash, kind, run_id, payload, type, at FROM entries "
                         "WHERE seq = 3").fetchone()
        forged = row[3].replace('"d-1"', '"d-2"')
        db.execute("UPDATE entries SET payload = ?, hash = ? WHERE seq = 3",
                   (forged, entry_hash(3, row[0], row[1], row[2], forged, type=row[4],
                                       at=row[5])))
    problems = journal.verify()
    assert kinds(problems) == [("edited", 3)]
    assert "rewritten" in problems[0].detail


def test_deleted_row_is_reported_as_removed(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("DELETE FROM entries WHERE seq = 6")
    problems = journal.verify()
    assert kinds(problems) == [("removed", 6)]
    assert "seq 6 missing" in problems[0].detail


def test_two_swapped_rows_are_reported_as_reordered(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("UPDATE entries SET seq = -1 WHERE seq = 3")
        db.execute("UPDATE entries SET seq = 3 WHERE seq = 4")
        db.execute("UPDATE entries SET seq = 4 WHERE seq = -1")
    problems = journal.verify()
    assert kinds(problems) == [("reordered", 3), ("reordered", 4)]
    assert problems[0].detail == "written as seq 4, now at seq 3"
    assert problems[1].type == "step_started"


def test_removed_row_with_the_rest_renumbered(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("DELETE FROM entries WHERE seq = 5")
        for seq in range(6, 13):
            db.execute("UPDATE entries SET seq = ? WHERE seq = ?", (seq - 1, seq))
        db.execute("UPDATE chain_head SET seq = 11")
    problems = journal.verify()
    assert problems[0].kind == ProblemKind.REMOVED and problems[0].seq == 5
    assert "written as seq 5" in problems[0].detail
    assert problems[1].kind == ProblemKind.REORDERED
    assert (problems[1].seq, problems[1].last_seq) == (5, 11)
    assert "renumbered" in problems[1].detail


def test_truncated_tail_shows_against_the_head_record(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("DELETE FROM entries WHERE seq >= 11")
    problems = journal.verify()
    assert (problems[0].kind, problems[0].seq, problems[0].last_seq) == ("removed", 11, 12)
    assert "chain head records seq 12, the last entry is seq 10" in problems[0].detail


def test_truncated_tail_with_forged_head_needs_the_anchor(journal: Journal) -> None:
    anchor = journal.head()
    with raw(journal) as db:
        db.execute("DELETE FROM entries WHERE seq >= 11")
        last = db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        db.execute("UPDATE chain_head SET seq = ?, hash = ?", last)
        # The careful attacker also puts the runs row back to the status the cut chain implies.
        db.execute("UPDATE runs SET status = 'running' WHERE run_id = 'run-a'")
    # Without an anchor a clean cut is undetectable: the journal is a valid shorter chain.
    assert journal.verify() == []
    assert journal.head()[0] == 10
    problems = journal.verify(anchor=anchor)
    assert kinds(problems) == [("removed", 12)]
    assert "journal ends at seq 10" in problems[0].detail


def test_rewritten_history_differs_from_the_anchor(journal: Journal) -> None:
    anchor = journal.head()
    with raw(journal) as db:
        # Flip the first hex digit (always a change, whatever it was).
        flip = "(CASE WHEN substr(hash, 1, 1) = 'f' THEN 'e' ELSE 'f' END) || substr(hash, 2)"
        db.execute(f"UPDATE entries SET hash = {flip} WHERE seq = 12")
        db.execute(f"UPDATE chain_head SET hash = {flip}")
    problems = journal.verify(anchor=anchor)
    assert ("edited", 12) in kinds(problems)
    assert any("differs from the anchor" in p.detail for p in problems)


def test_runs_row_edits_are_caught(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("UPDATE runs SET playbook_text = 'name: other\n', status = 'failed' "
                   "WHERE run_id = 'run-a'")
        db.execute("DELETE FROM runs WHERE run_id = 'run-b'")
    problems = journal.verify()
    assert [(p.kind, p.run_id) for p in problems] == [("edited", "run-a"), ("removed", "run-b")]
    assert problems[0].detail.endswith("in: playbook_text, status")


def test_approval_row_edits_are_caught(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("UPDATE approvals SET decision = 'reject', by_name = 'mallory'")
        db.execute("INSERT INTO approvals (seq, run_id, step_id, decision, by_name, at, "
                   "accepted) VALUES (99, 'run-b', 'x', 'approve', 'mallory', 'now', true)")
    problems = journal.verify()
    assert [(p.kind, p.seq) for p in problems] == [("edited", 9), ("inserted", 99)]
    assert "decision, by" in problems[0].detail


def test_verification_stops_after_max_problems(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("UPDATE entries SET payload = '{}' WHERE seq > 2")
    problems = journal.verify(max_problems=3)
    assert [p.kind for p in problems] == ["edited"] * 3 + ["incomplete"]


def test_appending_after_a_cut_tail_leaves_the_gap_visible(journal: Journal) -> None:
    with raw(journal) as db:
        db.execute("DELETE FROM entries WHERE seq = 12")
    journal.append(event("run-b", "step_succeeded", step="contain", output={}))
    assert kinds(journal.verify()) == [("removed", 12)]


# export ------------------------------------------------------------------------------------------

def test_export_writes_one_chained_record_per_line(journal: Journal) -> None:
    out = io.StringIO()
    assert journal.export_jsonl(out) == 12
    lines = out.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert set(records[0]) == {"seq", "prev_hash", "hash", "kind", "run_id", "type", "at",
                               "payload", "v"}
    assert records[0]["prev_hash"] == GENESIS
    assert records[1]["prev_hash"] == records[0]["hash"]
    assert records[1]["payload"]["type"] == "run_started"
    # A SIEM can check each line on its own from the documented formula.
    for record in records:
        envelope = {k: record[k] for k in ("seq", "prev_hash", "kind", "run_id", "payload",
                                           "type", "at", "v")}
        assert hashlib.sha256(canonical_json(envelope).encode()).hexdigest() == record["hash"]


def test_export_of_one_run_and_since(journal: Journal) -> None:
    out = io.StringIO()
    assert journal.export_jsonl(out, run_id="run-b") == 6
    assert {json.loads(line)["run_id"] for line in out.getvalue().splitlines()} == {"run-b"}
    out = io.StringIO()
    assert journal.export_jsonl(out, since_seq=10) == 2
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == [11, 12]


def test_an_export_verifies_offline(journal: Journal) -> None:
    out = io.StringIO()
    journal.export_jsonl(out)
    anchor = journal.head()
    out.seek(0)
    assert verify_jsonl(out, anchor=anchor) == []
    lines = out.getvalue().splitlines()
    tampered = [*lines[:3], lines[4], lines[3], *lines[5:7], *lines[8:]]
    problems = verify_jsonl(io.StringIO("\n".join(tampered)), anchor=anchor)
    assert [(p.kind, p.seq) for p in problems] == [("reordered", 4), ("removed", 8)]
    assert problems[0].detail == "line 5: seq 4 comes after seq 5"


def test_a_corrupt_export_line_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="line 2: not a journal export record"):
        list(read_jsonl(io.StringIO(f'{{"seq": 1, "prev_hash": "{GENESIS}", "hash": "x", '
                                    '"kind": "run", "run_id": "r", "payload": {}}\n'
                                    '{"nope": true}\n')))
