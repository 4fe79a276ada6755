"""Undo of a run that is still waiting: the run is cancelled first (audited), none of its
steps runs afterwards, and a later approve / resume / Slack answer is refused. End to end with
the shipped cloud/gen-AI playbook against the mock vendors, and through the Runner API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.errors import RunEnded
from crownguard.engine.journal import SQLiteJournal, open_journal
from crownguard.engine.operators import os_user
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet, seed
from crownguard.engine.spec import parse_playbook

ROOT = Path(__file__).resolve().parents[1]
CLOUD = ROOT / "plugins" / "incydr" / "samples" / "model-to-personal-cloud.json"
PRIYA = "priya.raman@example.com"
PEOPLE = {"slack": {"users": [{"email": PRIYA, "name": "Priya Raman"}]}}
COMMENTS = "/rest/api/3/issue/{key}/comment"




@pytest.fixture
def vendors(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path, list[str]]:
    """Fresh mock state with Priya, and a connections file whose secrets come from the
    environment; returns the fleet, the file and the secret values."""
    fleet.reset()
    seed(fleet, PEOPLE)
    config, secrets = fleet_connections(fleet)
    return fleet, config, secrets


def waiting_run(run_cli: Any, config: Path, journal: Path) -> dict[str, Any]:
    code, out, err = run_cli("respond", CLOUD, "--config", config, "--journal", journal,
                             "--json")
    assert code == 3, err
    [result] = json.loads(out)
    [record] = result["runs"]
    assert record["status"] == "waiting"
    assert record["steps"]["await_answer"]["status"] == "waiting"
    return dict(record)


def test_undo_of_a_waiting_run_cancels_it_and_nothing_of_it_runs_later(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path) -> None:
    fleet, config, secrets = vendors
    journal = tmp_path / "journal.sqlite"
    record = waiting_run(run_cli, config, journal)
    run_id = record["run_id"]
    key = record["steps"]["ticket"]["output"]["key"]
    nudge = record["steps"]["nudge"]["output"]
    slack, jira = fleet.get("slack"), fleet.get("jira")
    posts_before = len(slack.calls_to("POST", "/api/chat.postMessage"))
    # The employee clicks just before the undo deletes the nudge.
    body, headers = slack.click(nudge["channel"], nudge["ts"], "mistake", nudge["user_id"])
    (tmp_path / "body.txt").write_text(body)

    code, out, err = run_cli("undo", run_id, "--journal", journal)
    assert code == 0, out + err
    assert f"cancelling run {run_id} (waiting) first" in out
    assert "run cancelled: undo of its changes" in out
    assert "steps cancelled: await_answer, record_answer, escalate, escalate_ticket" in out
    assert "undo ticket: jira.close_issue" in out and "undo nudge: slack.delete_message" in out
    assert next(i for i in jira.issues() if i["key"] == key)["status"] == "Done"
    assert len(slack.calls_to("POST", "/api/chat.delete")) == 1

    with open_journal(journal) as j:
        run = j.get_run(run_id)
        assert run.status == "cancelled" and run.lease_expires is None
        [undo_run] = j.list_runs(kind="undo", parent_run_id=run_id)
        assert undo_run.status == "succeeded"
        [cancel] = [e for e in j.events(run_id) if e["type"] == "run_cancelled"]
        assert cancel["undo_run_id"] == undo_run.run_id and cancel["by"] == os_user()
        assert set(cancel["cancelled_steps"]) == {"await_answer", "record_answer", "escalate",
                                                  "escalate_ticket"}

    # The undo run is a run like any other: the journal keeps its playbook, so it can be shown.
    code, out, err = run_cli("runs", "show", undo_run.run_id, "--journal", journal)
    assert code == 0, out + err
    assert f"undo of run {run_id}" in out and "undo_ticket" in out

    # The employee's reject after the undo: refused, recorded, and nothing escalates.
    code, out, err = run_cli("approve", run_id, "await_answer", "--decision", "reject",
                             "--by", PRIYA, "--comment", "too late", "--config", config,
                             "--journal", journal)
    assert code == 1
    assert f"run {run_id} was undone and cancelled at " in err
    assert f"(undo run {undo_run.run_id}); nothing to approve" in err
    assert "Traceback" not in out + err
    # ... nor does a click on the nudge's buttons that reaches us through Slack only now.
    args: list[Any] = ["slack-answer", "--body-file", tmp_path / "body.txt", "--config", config,
                       "--journal", journal]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    code, out, err = run_cli(*args)
    assert code == 1 and "nothing to approve" in err
    code, out, err = run_cli("resume", run_id, "--config", config, "--journal", journal)
    assert code == 2 and f"run {run_id} was undone and cancelled at " in err
    assert "nothing to resume" in err
    code, out, err = run_cli("resume", "--all", "--config", config, "--journal",
                             journal, "--json")
    assert code == 0 and json.loads(out) == {"resumed": [], "skipped": [], "failed": [],
                                             "given_up": []}

    assert len(slack.calls_to("POST", "/api/chat.postMessage")) == posts_before
    assert jira.calls_to("POST", COMMENTS) == []  # no record_answer, no escalate_ticket
    [closing] = [json.dumps(c["body"]) for c in jira.comments(key)]
    assert "the response was undone" in closing  # the undo's own note, nothing of the run

    # The audit trail has all of it, intact.
    code, out, err = run_cli("runs", "show", run_id, "--journal", journal, "--json")
    shown = json.loads(out)
    assert shown["status"] == "cancelled"
    assert shown["steps"]["await_answer"]["status"] == "cancelled"
    assert shown["steps"]["escalate"]["status"] == "cancelled"
    assert [(a["decision"], a["accepted"]) for a in shown["approvals"]] == [
        ("reject", False), ("approve", False)]
    assert all("nothing to approve" in a["reason"] for a in shown["approvals"])
    code, out, _ = run_cli("runs", "show", run_id, "--journal", journal)
    assert "run cancelled: undo of its changes" in out
    assert "refused: run " in out
    code, out, _ = run_cli("audit", "verify", "--journal", journal)
    assert code == 0 and "journal intact" in out
    code, out, _ = run_cli("audit", "export", "--run", run_id, "--journal", journal)
    types = [json.loads(line)["type"] for line in out.splitlines()]
    assert types.count("run_cancelled") == 1 and "run_finished" not in types
    everything = "".join(run_cli("runs", "show", run_id, "--journal", journal)[1:])
    assert all(secret not in everything for secret in secrets)


def test_undo_dry_run_of_a_waiting_run_cancels_nothing(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path) -> None:
    fleet, config, _ = vendors
    journal = tmp_path / "journal.sqlite"
    run_id = waiting_run(run_cli, config, journal)["run_id"]
    code, out, err = run_cli("undo", run_id, "--dry-run", "--journal", journal)
    assert code == 0, out + err
    assert f"dry run: would cancel run {run_id} (waiting) first" in out
    assert "would call jira.close_issue" in out
    with open_journal(journal) as j:
        assert j.get_run(run_id).status == "waiting"
    assert fleet.get("jira").calls_to("POST", "/rest/api/3/issue/{key}/transitions") == []
    # The run goes on as before: the employee's answer lands on the ticket.
    code, out, err = run_cli("approve", run_id, "await_answer", "--decision",
                             "approve", "--by", PRIYA, "--comment", "a mistake",
                             "--config", config, "--journal", journal)
    assert code == 0, err
    assert len(fleet.get("jira").calls_to("POST", COMMENTS)) == 1


def test_undo_of_one_step_of_a_waiting_run_cancels_the_run_too(
        run_cli: Any, vendors: tuple[MockFleet, Path, list[str]], tmp_path: Path) -> None:
    fleet, config, _ = vendors
    journal = tmp_path / "journal.sqlite"
    run_id = waiting_run(run_cli, config, journal)["run_id"]
    code, _, err = run_cli("undo", run_id, "--step", "nope", "--journal", journal)
    assert code == 2 and "has no step 'nope'" in err
    with open_journal(journal) as j:
        assert j.get_run(run_id).status == "waiting"  # a wrong request cancels nothing
    code, out, err = run_cli("undo", run_id, "--step", "ticket", "--journal", journal,
                             "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"  # stdout stays JSON ...
    assert "cancelling run" in err  # ... the notice goes to stderr
    with open_journal(journal) as j:
        assert j.get_run(run_id).status == "cancelled"
    assert fleet.get("slack").calls_to("POST", "/api/chat.delete") == []


# --- the Runner and journal API ----------------------------------------------------------------

WAIT = """
name: wait-then-act
steps:
  - {id: first, action: core.noop}
  - id: ask
    action: core.wait_for_approval
    needs: [first]
    with: {prompt: "go on?"}
  - {id: after, action: core.noop, needs: [ask]}
"""


@pytest.fixture
def core_host() -> PluginHost:
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    return host


def test_runner_cancel_ends_the_run_and_the_journal_keeps_it_ended(
        core_host: PluginHost, tmp_path: Path) -> None:
    playbook = parse_playbook(WAIT, core_host.actions)
    finished: list[dict[str, Any]] = []

    class Observer:
        from crownguard.engine import hookimpl

        @hookimpl
        def crownguard_run_finished(self, record: dict[str, Any]) -> None:
            finished.append(record)

    core_host.add(Observer(), "observer")
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        record = Runner(core_host, journal=journal).run(playbook, {})
        run_id = record["run_id"]
        assert record["status"] == "waiting"
        run = journal.get_run(run_id)
        cancelled = Runner(core_host, journal=journal).cancel(
            playbook, run_id, run.inputs, journal.events(run_id), reason="false positive")
        assert cancelled["status"] == "cancelled"
        assert {k: v["status"] for k, v in cancelled["steps"].items()} == {
            "first": "succeeded", "ask": "cancelled", "after": "cancelled"}
        assert finished[-1]["status"] == "cancelled"
        assert journal.get_run(run_id).status == "cancelled"
        events = journal.events(run_id)
        with pytest.raises(RunEnded, match="cannot be resumed"):
            Runner(core_host, journal=journal).resume(
                playbook, run_id, run.inputs, events,
                {"ask": {"decision": "approve", "by": "x"}})
        with pytest.raises(RunEnded, match="cancelled already"):
            Runner(core_host, journal=journal).cancel(playbook, run_id, run.inputs, events,
                                                      reason="again")
        # The journal itself refuses to let the run go on, whoever asks.
        with pytest.raises(RunEnded, match="takes no more events"):
            journal.append({"type": "step_started", "step": "after", "attempt": 1,
                            "inputs": {}, "run_id": run_id, "at": "2026-01-01T00:00:00Z"})
        with pytest.raises(RunEnded, match="cannot become running"):
            journal.set_status(run_id, "running")
        assert not journal.claim(run_id)
        assert journal.verify() == []


def test_a_finished_run_cannot_be_cancelled(core_host: PluginHost, tmp_path: Path) -> None:
    playbook = parse_playbook("name: quick\nsteps:\n  - {id: a, action: core.noop}\n",
                              core_host.actions)
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        run_id = Runner(core_host, journal=journal).run(playbook, {})["run_id"]
        run = journal.get_run(run_id)
        with pytest.raises(RunEnded, match=r"has already ended \(succeeded\)"):
            Runner(core_host, journal=journal).cancel(
                playbook, run_id, run.inputs, journal.events(run_id), reason="late")
        assert journal.get_run(run_id).status == "succeeded"
