"""Outcomes that say what happened: a run that "succeeded" because its escalation handled the
failures of every containment step, or after a rejected approval or an expired wait, says so
in its record, in `runs`, `runs show`, `respond` and the timeline; `--strict` exits 4."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.journal import open_journal
from crownguard.engine.kinds import RunStatus
from crownguard.engine.outcome import FailedStep, describe
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet, seed
from crownguard.engine.spec import parse_playbook
from tests.test_triage_cli import CLOUD, DANA, USB

CONTAINMENT = ["contain", "quarantine_file", "suspend", "revoke_sessions", "hr_case"]


@pytest.fixture
def vendors(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path]:
    fleet.reset()
    seed(fleet, DANA)
    config, _ = fleet_connections(fleet)
    return fleet, config


def _break_containment(fleet: MockFleet) -> None:
    """Falcon, Okta and ServiceNow refuse everything; Jira (the ticket) and Slack (the
    escalation) work."""
    fleet.get("falcon").inject("status", status=401, path="/oauth2/token", times=None)
    fleet.get("okta").inject("status", status=403, times=None)
    fleet.get("servicenow").inject("status", status=403, times=None)


def test_departing_employee_with_all_containment_failing_says_so_everywhere(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    fleet, config = vendors
    _break_containment(fleet)
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal)
    assert code == 0, err  # without --strict: as before
    sentence = "succeeded with 5 handled failures: " + ", ".join(CONTAINMENT)
    run_id = out.split("\nrun ")[-1].split(":")[0].strip()
    assert f"run {run_id}: {sentence}" in out  # respond's own line
    assert f"run finished: {sentence}" in out  # the end of the timeline

    code, out, err = run_cli("runs", "--journal", journal)
    assert code == 0, err
    assert f"succeeded  departing-employee-model-exfil: with 5 handled failures: " \
           f"{', '.join(CONTAINMENT)}" in out
    code, out, _ = run_cli("runs", "--json", "--journal", journal)
    [listed] = json.loads(out)
    assert [f["step"] for f in listed["handled_failures"]] == CONTAINMENT
    assert listed["degraded"] is True and listed["outcome"] == sentence

    code, out, _ = run_cli("runs", "show", run_id, "--json", "--journal", journal)
    record = json.loads(out)
    assert record["status"] == "succeeded" and record["degraded"] is True
    assert [(f["step"], f["action"]) for f in record["handled_failures"]] == [
        ("contain", "falcon.contain_host"), ("quarantine_file", "falcon.quarantine_file"),
        ("suspend", "okta.suspend_user"), ("revoke_sessions", "okta.clear_sessions"),
        ("hr_case", "servicenow.create_hr_case")]
    assert all(f["error"] for f in record["handled_failures"])
    assert record["unhandled_failures"] == record["rejected_approvals"] == []
    code, out, _ = run_cli("runs", "show", run_id, "--journal", journal)
    assert out.rstrip().endswith(f"run {run_id}: {sentence}")


def test_respond_strict_exits_4_on_a_degraded_run(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    fleet, config = vendors
    _break_containment(fleet)
    code, out, err = run_cli("respond", USB, "--config", config, "--no-journal", "--json",
                             "--strict")
    assert code == 4, err
    [result] = json.loads(out)
    [run] = result["runs"]
    assert run["status"] == "succeeded" and len(run["handled_failures"]) == 5


def test_respond_strict_exits_0_on_a_clean_run(
        run_cli: Any, vendors: tuple[MockFleet, Path]) -> None:
    _, config = vendors
    code, out, err = run_cli("respond", USB, "--config", config, "--no-journal", "--strict")
    assert code == 0, err
    assert "succeeded with" not in out and ": succeeded\n" in out


HANDLED = """\
name: handled
steps:
  - id: call
    action: core.http_request
    with: {method: GET, url: "https://not-allowed.example.com/x"}
  - id: tell
    action: core.noop
    needs: [call]
    when: failure
"""


def test_run_strict_exits_4_and_the_record_lists_the_handled_failure(
        run_cli: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "handled.yaml"
    playbook.write_text(HANDLED)
    code, out, err = run_cli("run", playbook, "--no-journal", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["status"] == "succeeded" and record["degraded"] is True
    [failure] = record["handled_failures"]
    assert failure["step"] == "call" and failure["action"] == "core.http_request"
    assert "not-allowed.example.com" in failure["error"]
    assert record["outcome"] == "succeeded with 1 handled failure: call"
    code, out, err = run_cli("run", playbook, "--no-journal", "--strict")
    assert code == 4, err
    assert "run finished: succeeded with 1 handled failure: call" in out
    assert out.rstrip().endswith(": succeeded with 1 handled failure: call")


def test_a_rejected_approval_shows_its_outcome(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    _, config = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", CLOUD, "--config", config, "--journal", journal)
    assert code == 3, err
    run_id = out.split("\nrun ")[-1].split(":")[0].strip()
    assert f"run {run_id}: waiting at await_answer" in out
    code, out, err = run_cli("approve", run_id, "await_answer", "--decision", "reject",
                             "--by", "priya.raman@example.com", "--comment", "no reason",
                             "--config", config, "--journal", journal)
    assert code == 0, err
    sentence = "succeeded after a rejected approval at await_answer"
    assert f"run {run_id}: {sentence}" in out
    code, out, _ = run_cli("runs", "--journal", journal)
    assert "succeeded  model-to-personal-cloud-or-genai: after a rejected approval at " \
           "await_answer" in out
    code, out, _ = run_cli("runs", "show", run_id, "--json", "--journal", journal)
    record = json.loads(out)
    [rejected] = record["rejected_approvals"]
    assert rejected["step"] == "await_answer" and rejected["handled"] is True
    assert rejected["action"] == "core.wait_for_approval"
    assert rejected["error"].startswith("rejected by priya.raman@example.com")
    assert record["expired_waits"] == [] and record["degraded"] is True


WAITS = """\
name: waits
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "contain?", timeout_seconds: 0.01}
  - id: chase
    action: core.noop
    needs: [ask]
    when: failure
"""


def test_an_expired_wait_shows_its_outcome(run_cli: Any, tmp_path: Path) -> None:
    playbook = tmp_path / "waits.yaml"
    playbook.write_text(WAITS)
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("run", playbook, "--journal", journal, "--json")
    assert code == 3, err
    run_id = json.loads(out)["run_id"]
    time.sleep(0.05)
    code, out, err = run_cli("resume", run_id, "--journal", journal, "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["outcome"] == "succeeded after an expired wait at ask"
    [expired] = record["expired_waits"]
    assert expired["step"] == "ask" and expired["handled"] is True
    assert expired["error"].startswith("no answer before")
    assert record["rejected_approvals"] == [] and record["degraded"] is True
    code, out, _ = run_cli("runs", "--journal", journal)
    assert "succeeded  waits: after an expired wait at ask" in out


def _failed(step: str, handled: bool = True, wait: Any = None) -> FailedStep:
    return FailedStep(step, "x.y", "boom", handled, wait)


def test_the_sentence_counts_and_names_each_kind_once() -> None:
    assert describe(RunStatus.SUCCEEDED, [], []) == "succeeded"
    assert describe(RunStatus.WAITING, [], ["ask"]) == "waiting at ask"
    assert describe(RunStatus.FAILED, [_failed("a", False), _failed("b")], []) == \
        "failed with 1 unhandled failure: a; 1 handled failure: b"
    assert describe(RunStatus.SUCCEEDED, [_failed("a"), _failed("b")], []) == \
        "succeeded with 2 handled failures: a, b"
    both = [_failed("a"), _failed("r", wait="rejected"), _failed("s", wait="rejected"),
            _failed("e", False, "expired")]
    assert describe(RunStatus.FAILED, both, []) == (
        "failed with 1 handled failure: a; after 2 rejected approvals at r, s and an expired "
        "wait at e")


def test_undo_of_a_departing_run_leaves_the_soc_post_there_marked_as_retracted(
        run_cli: Any, vendors: tuple[MockFleet, Path], tmp_path: Path) -> None:
    fleet, config = vendors
    _break_containment(fleet)
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", USB, "--config", config, "--journal", journal)
    assert code == 0, err
    run_id = out.split("\nrun ")[-1].split(":")[0].strip()
    slack = fleet.get("slack")
    soc = next(c for c in slack.conversations.values() if c["name"] == "soc-alerts")["id"]
    [posted] = slack.messages(soc)
    assert "is incomplete" in posted["text"]

    code, out, err = run_cli("undo", run_id, "--config", config, "--journal", journal,
                             "--json")
    assert code == 0, err
    undo = json.loads(out)
    undo_run = undo["run_id"]
    assert undo["steps"]["undo_escalate"]["status"] == "succeeded"
    assert undo["steps"]["undo_escalate"]["output"]["changed"] is True
    [message] = slack.messages(soc)  # not deleted: the same message, annotated
    assert message["ts"] == posted["ts"]
    assert message["text"].startswith(":no_entry_sign: *Retracted by crownguard undo* "
                                      f"(undo run {undo_run})")
    assert "is incomplete" in message["text"]
    assert slack.calls_to("POST", "/api/chat.delete") == []


def test_runs_lists_the_outcome_of_a_run_journaled_before_outcomes_existed(
        run_cli: Any, tmp_path: Path) -> None:
    """Its run_finished event has no `outcome`: the listing rebuilds it from the events."""
    host = PluginHost.from_entry_points()
    playbook = parse_playbook(HANDLED, host.actions)
    path = tmp_path / "old.sqlite"
    with open_journal(path) as journal:
        journal.create_run("0ld0ld0ld0ld", playbook.name, playbook.text, inputs={})

        def as_before(event: dict[str, Any]) -> None:
            journal({k: v for k, v in event.items() if k != "outcome"})

        Runner(host, journal=as_before).run(playbook, {}, run_id="0ld0ld0ld0ld")
        assert all("outcome" not in e for e in journal.events("0ld0ld0ld0ld"))
    code, out, err = run_cli("runs", "--journal", path)
    assert code == 0, err
    assert "succeeded  handled: with 1 handled failure: call" in out
    code, out, _ = run_cli("runs", "show", "0ld0ld0ld0ld", "--journal", path)
    assert "run finished: succeeded\n" in out  # the old event, as it was written
    assert out.rstrip().endswith("run 0ld0ld0ld0ld: succeeded with 1 handled failure: call")
