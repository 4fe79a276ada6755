"""The run journal: runs, events, statuses, approvals, leases, and the runner writing to it."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from journal_kinds import KINDS, location, location_for, open_kind, raw

from crownguard.engine import ActionContext, action, hookimpl
from crownguard.engine.conductor import Conductor
from crownguard.engine.errors import JournalError, RunHeldElsewhere, UnknownRun
from crownguard.engine.journal import (
    Journal,
    ProcessIdentity,
    SQLiteJournal,
    default_journal_path,
    open_journal,
)
from crownguard.engine.journal.base import SCHEMA_VERSION
from crownguard.engine.kinds import ApprovalDecision, RunKind
from crownguard.engine.runner import Runner
from crownguard.engine.spec import parse_playbook

T0 = "2025-03-01T10:00:00.000000Z"


def event(run_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "run_id": run_id, "at": T0, **fields}


@pytest.fixture(params=KINDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Journal:
    """A SQLite journal and a PostgreSQL one: the same tests hold for both."""
    j = open_kind(request.param, request, tmp_path)
    yield j
    j.close()


def new_run(j: Journal, run_id: str = "r1", **kwargs: Any) -> None:
    j.create_run(run_id, kwargs.pop("playbook", "contain"), "name: contain\nsteps: []\n",
                 inputs=kwargs.pop("inputs", {"event": {"actor": "dev@example.com"}}),
                 **kwargs)


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, check=False)


# where it lives ----------------------------------------------------------------------------------

def test_default_path_prefers_the_variable_then_xdg_then_home(tmp_path: Path) -> None:
    assert default_journal_path({"CROWNGUARD_JOURNAL": "/srv/j.sqlite",
                                 "XDG_STATE_HOME": "/x"}) == Path("/srv/j.sqlite")
    assert default_journal_path({"CROWNGUARD_JOURNAL": "~/j.sqlite", "HOME": "/h"}) == \
        Path("~/j.sqlite").expanduser()
    assert default_journal_path({"XDG_STATE_HOME": "/state", "HOME": "/h"}) == \
        Path("/state/crownguard/journal.sqlite")
    # XDG: a relative XDG_STATE_HOME is invalid and ignored.
    assert default_journal_path({"XDG_STATE_HOME": "rel", "HOME": "/h"}) == \
        Path("/h/.local/state/crownguard/journal.sqlite")
    assert default_journal_path({"HOME": "/h", "CROWNGUARD_JOURNAL": ""}) == \
        Path("/h/.local/state/crownguard/journal.sqlite")


def test_open_journal_creates_a_private_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "journal.sqlite"
    with open_journal(env={"CROWNGUARD_JOURNAL": str(path)}) as j:
        assert j.path == path
        assert path.stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_in_memory_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="must be a file"):
        SQLiteJournal(":memory:")
    path = tmp_path / "j.sqlite"
    SQLiteJournal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9")
    with pytest.raises(JournalError, match="schema 9, newer"):
        SQLiteJournal(path)


# runs and events ---------------------------------------------------------------------------------

def test_create_and_get_a_run(journal: Journal) -> None:
    text = "name: contain\nsteps: []\n"
    record = journal.create_run("r1", "contain", text, inputs={"event": {"n": 1}, "risk": {}},
                                playbook_path="/pb/contain.yaml", config_path="/etc/c.yaml")
    again = journal.get_run("r1")
    assert again == record
    assert (again.playbook, again.playbook_path, again.playbook_text) == \
        ("contain", "/pb/contain.yaml", text)
    assert again.playbook_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert again.inputs == {"event": {"n": 1}, "risk": {}}
    assert (again.status, again.kind, again.parent_run_id) == ("running", "run", None)
    assert again.owner == ProcessIdentity.current()
    assert again.lease_expires is not None
    assert again.to_dict(with_text=False)["status"] == "running"
    assert "playbook_text" not in again.to_dict(with_text=False)
    json.dumps(again.to_dict())


def test_duplicate_and_unknown_runs(journal: Journal) -> None:
    new_run(journal)
    with pytest.raises(JournalError, match="already in the journal"):
        new_run(journal)
    with pytest.raises(UnknownRun, match="no run nope"):
        journal.get_run("nope")
    with pytest.raises(UnknownRun):
        journal.append(event("nope", "run_started"))
    with pytest.raises(UnknownRun):
        journal.record_approval("nope", "s", "approve", "x")


def test_events_round_trip_in_order(journal: Journal) -> None:
    new_run(journal)
    new_run(journal, "other")
    stream = [
        event("r1", "run_started", playbook="contain", inputs={"event": {"x": 1}}),
        event("r1", "step_started", step="a", attempt=1, inputs={"id": "h-1"}),
        event("other", "run_started", playbook="contain", inputs={}),
        event("r1", "attempt_failed", step="a", attempt=1, error="falcon (HTTP 503)",
              error_type="ServerError", retryable=True, retry_in=0.25),
        event("r1", "step_started", step="a", attempt=2, inputs={"id": "h-1"}),
        event("r1", "item_succeeded", step="a", item=0, output={"ok": True}),
        event("r1", "step_succeeded", step="a", output=[{"ok": True}]),
        event("r1", "step_waiting", step="b"),
        event("r1", "step_skipped", step="c", reason="'a' failed"),
        event("r1", "step_failed", step="d", error="boom"),
        event("r1", "run_finished", status="failed"),
    ]
    seqs = [journal.append(e) for e in stream]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert journal.events("r1") == [e for e in stream if e["run_id"] == "r1"]
    assert journal.events("other") == [stream[2]]
    assert journal.get_run("r1").status == "failed"


def test_a_journal_is_the_runners_event_sink(journal: Journal) -> None:
    new_run(journal)
    journal(event("r1", "run_started"))
    assert [e["type"] for e in journal.events("r1")] == ["run_started"]


def test_bad_events_are_refused_without_showing_values(journal: Journal) -> None:
    from crownguard.engine import Secret

    new_run(journal)
    with pytest.raises(JournalError, match="needs string run_id, at"):
        journal.append({"type": "run_started"})
    with pytest.raises(JournalError, match="unknown event type 'exploded'"):
        journal.append(event("r1", "exploded"))
    with pytest.raises(JournalError, match="NaN"):
        journal.append(event("r1", "step_succeeded", step="a", output={"x": float("nan")}))
    with pytest.raises(JournalError, match="a Secret is not JSON") as caught:
        journal.append(event("r1", "step_started", step="a", attempt=1,
                             inputs={"token": Secret("hunter2-value")}))
    assert "hunter2" not in str(caught.value)
    with pytest.raises(JournalError, match="unknown run status"):
        journal.append(event("r1", "run_finished", status="exploded"))
    assert journal.events("r1") == []
    assert journal.verify() == []


def test_status_changes_are_chained_and_idempotent(journal: Journal) -> None:
    new_run(journal)
    before = journal.head()[0]
    journal.set_status("r1", "waiting")
    journal.set_status("r1", "waiting")  # already so: nothing recorded
    assert journal.head()[0] == before + 1
    run = journal.get_run("r1")
    assert run.status == "waiting" and run.lease_expires is None
    last = list(journal.entries("r1"))[-1]
    assert (last.kind, last.payload["status"], last.payload["previous"]) == \
        ("status", "waiting", "running")
    journal.set_status("r1", "cancelled", reason="false positive")
    assert list(journal.entries("r1"))[-1].payload["reason"] == "false positive"
    with pytest.raises(JournalError, match="unknown run status 'paused'"):
        journal.set_status("r1", "paused")
    assert journal.verify() == []


def test_run_cancelled_event_sets_the_status(journal: Journal) -> None:
    new_run(journal)
    journal.append(event("r1", "run_cancelled"))
    assert journal.get_run("r1").status == "cancelled"


def test_list_runs_filters_newest_first(journal: Journal) -> None:
    new_run(journal, "a")
    new_run(journal, "b")
    new_run(journal, "undo-a", kind=RunKind.UNDO, parent_run_id="a")
    journal.append(event("a", "run_finished", status="succeeded"))
    assert [r.run_id for r in journal.list_runs()] == ["undo-a", "b", "a"]
    assert [r.run_id for r in journal.list_runs(limit=1)] == ["undo-a"]
    assert [r.run_id for r in journal.list_runs(status="running")] == ["undo-a", "b"]
    assert [r.run_id for r in journal.list_runs(status="succeeded")] == ["a"]
    assert [r.run_id for r in journal.list_runs(kind="undo")] == ["undo-a"]
    assert [r.run_id for r in journal.list_runs(parent_run_id="a")] == ["undo-a"]
    with pytest.raises(JournalError):
        journal.list_runs(status="nope")


# approvals ---------------------------------------------------------------------------------------

def test_approvals_accepted_and_refused(journal: Journal) -> None:
    new_run(journal)
    first = journal.record_approval("r1", "gate", "reject", "mallory@example.com",
                                    accepted=False, reason="not an approver")
    second = journal.record_approval("r1", "gate", ApprovalDecision.APPROVE, "lead@example.com",
                                     comment="confirmed with HR", at=T0)
    assert journal.approvals("r1") == [first, second]
    assert (first.accepted, first.reason, first.decision) == (False, "not an approver", "reject")
    assert (second.accepted, second.comment, second.at) == (True, "confirmed with HR", T0)
    assert second.to_dict()["decision"] == "approve"
    assert [e.type for e in journal.entries("r1")][-2:] == ["approval", "approval"]
    with pytest.raises(JournalError, match="approve or reject, not 'maybe'"):
        journal.record_approval("r1", "gate", "maybe", "x")
    assert journal.verify() == []


# leases and interrupted runs ---------------------------------------------------------------------

def owned_by(j: Journal, run_id: str, owner: ProcessIdentity, lease: float | None) -> None:
    with raw(j) as db:
        db.execute("UPDATE runs SET owner_host = ?, owner_pid = ?, owner_boot_id = ?, "
                   "owner_started = ?, lease_expires = ? WHERE run_id = ?",
                   (owner.host, owner.pid, owner.boot_id, owner.started, lease, run_id))


def parent_process() -> ProcessIdentity:
    """A live process that is not this one: the test runner's parent."""
    me = ProcessIdentity.current()
    stat = Path(f"/proc/{os.getppid()}/stat").read_text().rpartition(")")[2].split()
    return ProcessIdentity(me.host, os.getppid(), me.boot_id, stat[19])


FAR = 4_000_000_000.0  # a lease that has not expired
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_a_run_of_a_dead_process_is_interrupted(journal: Journal) -> None:
    code = ("import sys; from crownguard.engine.journal import open_journal\n"
            "j = open_journal(sys.argv[1]); j.create_run('crashed', 'p', 't', inputs={})\n"
            "j.append({'type': 'run_started', 'run_id': 'crashed', 'at': 'now'})")
    assert run_python(code, location(journal)).returncode == 0
    new_run(journal, "mine")
    new_run(journal, "done")
    journal.append(event("done", "run_finished", status="succeeded"))
    interrupted = journal.interrupted_runs()
    assert [r.run_id for r in interrupted] == ["crashed"]
    assert interrupted[0].owner is not None and interrupted[0].owner.alive() is False


@needs_proc
def test_liveness_tells_reused_pids_reboots_and_zombies_apart() -> None:
    me = ProcessIdentity.current()
    assert me.alive() is True
    assert parent_process().alive() is True
    assert ProcessIdentity(me.host, me.pid, me.boot_id, "1").alive() is False  # pid reused
    assert ProcessIdentity(me.host, me.pid, "another-boot", me.started).alive() is False
    assert ProcessIdentity("elsewhere", me.pid).alive() is None
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stat = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()
        identity = ProcessIdentity(me.host, child.pid, me.boot_id, stat[19])
        assert identity.alive() is True
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
        assert identity.alive() is False
    finally:
        child.kill()
        child.wait()


@needs_proc
def test_lease_expiry_and_other_hosts(journal: Journal) -> None:
    new_run(journal, "remote")
    remote = ProcessIdentity("another-host", 4242, "boot", "1")
    owned_by(journal, "remote", remote, FAR)
    assert journal.interrupted_runs() == []  # cannot see that host: trust the lease
    owned_by(journal, "remote", remote, 1.0)
    assert [r.run_id for r in journal.interrupted_runs()] == ["remote"]
    # An expired lease counts even for a live local process (it is hung or lost the run).
    owned_by(journal, "remote", parent_process(), 1.0)
    assert [r.run_id for r in journal.interrupted_runs()] == ["remote"]


def test_waiting_runs_are_not_interrupted(journal: Journal) -> None:
    new_run(journal)
    journal.set_status("r1", "waiting")
    owned_by(journal, "r1", ProcessIdentity("gone", 1), 1.0)
    assert journal.interrupted_runs() == []


def test_only_one_process_holds_a_run(journal: Journal) -> None:
    new_run(journal)
    owned_by(journal, "r1", ProcessIdentity("crashed-host", 1), 1.0)  # its writer is gone
    code = ("import sys; from crownguard.engine.journal import open_journal\n"
            "j = open_journal(sys.argv[1]); print(j.claim('r1'), flush=True)\n"
            "sys.stdin.readline()")
    other = subprocess.Popen([sys.executable, "-c", code, location(journal)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "True"
        owner = journal.get_run("r1").owner
        assert owner is not None and owner.pid == other.pid
        assert journal.interrupted_runs() == []
        assert journal.claim("r1") is False
        assert journal.renew_lease("r1") is False
        before = journal.head()
        with pytest.raises(RunHeldElsewhere, match=f"held by pid {other.pid}"):
            journal.append(event("r1", "step_started", step="a", attempt=1, inputs={}))
        assert journal.head() == before  # journal first: not recorded, so not to be done
    finally:
        other.communicate("done\n", timeout=60)
    # Its holder has exited: the run is interrupted and this process may take it over.
    assert [r.run_id for r in journal.interrupted_runs()] == ["r1"]
    assert journal.claim("r1") is True
    assert journal.get_run("r1").owner == ProcessIdentity.current()
    journal.append(event("r1", "step_started", step="a", attempt=1, inputs={}))
    assert journal.verify() == []


@needs_proc
def test_a_live_holder_keeps_the_run_until_its_lease_expires(journal: Journal) -> None:
    new_run(journal)
    holder = parent_process()
    owned_by(journal, "r1", holder, FAR)
    assert journal.claim("r1") is False
    owned_by(journal, "r1", holder, 1.0)  # hung: its lease ran out
    assert journal.claim("r1") is True


def test_claim_resumes_waiting_runs_but_not_finished_ones(journal: Journal) -> None:
    new_run(journal, "w")
    journal.set_status("w", "waiting")
    assert journal.claim("w") is True
    run = journal.get_run("w")
    assert run.status == "running" and run.lease_expires is not None
    assert list(journal.entries("w"))[-1].payload["reason"] == "claimed to resume"
    new_run(journal, "f")
    journal.append(event("f", "run_finished", status="succeeded"))
    assert journal.claim("f") is False
    with pytest.raises(UnknownRun):
        journal.claim("nope")


def test_renew_lease_extends_it(journal: Journal) -> None:
    new_run(journal)
    owned_by(journal, "r1", ProcessIdentity.current(), 5.0)
    assert journal.renew_lease("r1") is True
    lease = journal.get_run("r1").lease_expires
    assert lease is not None and lease > 5.0 + journal.lease_seconds


@pytest.mark.parametrize("kind", KINDS)
def test_an_appended_event_survives_the_process_being_killed(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = location_for(kind, request, tmp_path)
    code = ("import os, sys, signal; from crownguard.engine.journal import open_journal\n"
            "j = open_journal(sys.argv[1]); j.create_run('r', 'p', 't', inputs={})\n"
            "j.append({'type': 'step_started', 'run_id': 'r', 'at': 'now', 'step': 'a'})\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    assert run_python(code, path).returncode == -9
    with open_journal(path) as j:
        assert [e["type"] for e in j.events("r")] == ["step_started"]
        assert [r.run_id for r in j.interrupted_runs()] == ["r"]
        assert j.verify() == []


# with the runner ---------------------------------------------------------------------------------

class Vendor:
    """A test plugin: a side-effecting action that counts what it applied."""

    def __init__(self) -> None:
        self.applied: Counter[str] = Counter()
        self.lock = threading.Lock()

    @hookimpl
    def crownguard_register_actions(self, register: Any) -> None:
        vendor = self

        @action("vendor.apply", side_effect=True, undo="vendor.revert",
                input_schema={"type": "object", "properties": {"name": {"type": "string"}},
                              "additionalProperties": False},
                output_schema={"type": "object"})
        def apply(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
            """Apply a change once per step (counted)."""
            with vendor.lock:
                vendor.applied[inputs["name"]] += 1
            return {"name": inputs["name"], "changed": True}

        register(apply)


PLAYBOOK = """
name: three-steps
steps:
  - {id: a, action: vendor.apply, with: {name: a}}
  - {id: b, action: vendor.apply, needs: [a], with: {name: b}}
  - {id: c, action: vendor.apply, needs: [b], with: {name: "${{ steps.b.output.name }}-c"}}
"""


class Crash(BaseException):
    """The process dying right after an event was journaled."""


def crashing(journal_class: type[Journal], crash_after: str) -> type[Journal]:
    """A journal (of either kind) whose process dies right after one given event is stored."""

    class CrashingJournal(journal_class):  # type: ignore[misc, valid-type]
        def append_many(self, events: list[dict[str, Any]]) -> list[int]:
            seqs = super().append_many(events)  # the runner stores a round's events together
            if any(f"{e['type']}:{e.get('step')}" == crash_after for e in events):
                raise Crash(crash_after)
            return list(seqs)

    return CrashingJournal


def test_the_journal_replays_a_run_to_the_same_record(journal: Journal,
                                                      isolated_host: Any) -> None:
    host = isolated_host(Vendor(), name="vendor")
    playbook = parse_playbook(PLAYBOOK, host.actions)
    record = Runner(host, journal=journal).run(playbook, {"actor": "x"}, run_id="r1")
    assert record["status"] == "succeeded"
    run = journal.get_run("r1")  # the runner created it
    assert (run.status, run.playbook, run.inputs["event"]) == ("succeeded", "three-steps",
                                                               {"actor": "x"})
    assert run.playbook_sha256 == hashlib.sha256(run.playbook_text.encode()).hexdigest()
    replayed = Conductor.replay(parse_playbook(run.playbook_text, host.actions), run.inputs,
                                journal.events("r1"))
    assert replayed.record("r1") == record
    assert journal.verify() == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("crash_after", ["step_started:b", "step_succeeded:b",
                                         "run_started:None"])
def test_a_crashed_run_resumes_from_the_journal_exactly_once(
        tmp_path: Path, isolated_host: Any, crash_after: str, kind: str,
        request: pytest.FixtureRequest) -> None:
    vendor = Vendor()
    host = isolated_host(vendor, name="vendor")
    playbook = parse_playbook(PLAYBOOK, host.actions)
    where = location_for(kind, request, tmp_path)
    first = open_journal(where)
    first.close()
    crashed = crashing(type(first), crash_after)(where)
    with pytest.raises(Crash):
        Runner(host, journal=crashed).run(playbook, run_id="r1")
    crashed.close()
    with open_journal(where) as journal:
        run = journal.get_run("r1")
        assert run.status == "running"
        assert journal.claim("r1") is True  # same process: its lease is its own
        record = Runner(host, journal=journal).resume(
            parse_playbook(run.playbook_text, host.actions), "r1", run.inputs,
            journal.events("r1"))
        assert record["status"] == "succeeded"
        assert vendor.applied == Counter({"a": 1, "b": 1, "b-c": 1})
        assert journal.get_run("r1").status == "succeeded"
        assert journal.verify() == []
