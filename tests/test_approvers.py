"""Who may answer a waiting step: one check (engine.approvers) for `approve` and plugin
commands (runs.answer, with aliases) and for a scenario's `resume.answers`."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine import runs
from crownguard.engine.approvers import refusal, step_approvers
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet, Scenario, load_scenario
from crownguard.engine.spec import parse_playbook
from crownguard.engine.triage.scenarios import run_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "playbooks" / "scenarios"
PRIYA = "priya.raman@example.com"

WAITS = """
name: ask-then-act
steps:
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Go?", approvers: [Alice@Example.com, U0BOB0001], timeout_seconds: 3600}
  - id: act
    action: core.noop
    needs: [ask]
    with: {reason: "${{ steps.ask.output.by }}"}
"""


# --- the check ---------------------------------------------------------------------------------


def test_emails_match_in_any_case_and_other_identities_exactly() -> None:
    allowed = ["Alice@Example.com", "U0BOB0001"]
    assert refusal("alice@example.COM", allowed) is None
    assert refusal("U0BOB0001", allowed) is None
    assert refusal("u0bob0001", allowed) == \
        "u0bob0001 may not answer (allowed: Alice@Example.com, U0BOB0001)"


def test_an_alias_counts_and_is_named_in_a_refusal() -> None:
    assert refusal("bob@example.com", ["U0BOB0001"], ["U0BOB0001"]) is None
    assert refusal("eve@example.com", ["U0BOB0001"], ["U0EVE0001"]) == \
        "eve@example.com (also U0EVE0001) may not answer (allowed: U0BOB0001)"


def test_nobody_named_means_anyone_and_the_step_comes_before_the_fallback() -> None:
    assert refusal("anyone", []) is None
    assert step_approvers({"data": {"approvers": ["a"]}}, ["b"]) == ["a"]
    assert step_approvers({"data": {"approvers": []}}, ["b"]) == ["b"]
    assert step_approvers(None) == []


# --- runs.answer with aliases --------------------------------------------------------------------


@pytest.fixture
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SQLiteJournal]:
    with SQLiteJournal(tmp_path / "j.sqlite") as journal:
        yield journal


def start(host: PluginHost, journal: SQLiteJournal) -> str:
    record = Runner(host, journal=journal).run(parse_playbook(WAITS, host.actions), {})
    assert record["status"] == "waiting"
    return str(record["run_id"])


def test_an_answer_by_email_is_accepted_through_its_alias(host: PluginHost,
                                                          journal: SQLiteJournal) -> None:
    run_id = start(host, journal)
    result = runs.answer(journal, host, run_id, "ask", "approve", by="bob@example.com",
                         aliases=["U0BOB0001"], comment="fine")
    assert result.accepted and result.by == "bob@example.com"
    assert result.outcome is not None
    assert result.outcome.record["steps"]["act"]["output"]["reason"] == "bob@example.com"
    [approval] = journal.approvals(run_id)
    assert (approval.by, approval.accepted, approval.comment, approval.reason) == \
        ("bob@example.com", True, "fine", "also known as U0BOB0001")


def test_an_email_in_another_case_is_accepted(host: PluginHost,
                                              journal: SQLiteJournal) -> None:
    run_id = start(host, journal)
    assert runs.answer(journal, host, run_id, "ask", "approve", by="ALICE@example.com").accepted
    [approval] = journal.approvals(run_id)
    assert approval.reason is None  # no alias to record


def test_neither_the_identity_nor_an_alias_allowed_is_refused_and_recorded(
        host: PluginHost, journal: SQLiteJournal) -> None:
    run_id = start(host, journal)
    result = runs.answer(journal, host, run_id, "ask", "approve", by="eve@example.com",
                         aliases=["U0EVE0001"])
    assert not result.accepted
    assert result.reason == ("eve@example.com (also U0EVE0001) may not answer "
                             "(allowed: Alice@Example.com, U0BOB0001)")
    [approval] = journal.approvals(run_id)
    assert (approval.by, approval.accepted, approval.reason) == \
        ("eve@example.com", False, result.reason)
    assert journal.get_run(run_id).status == "waiting"


# --- scenario answers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> Iterator[MockFleet]:
    with MockFleet(PluginHost.from_entry_points()) as started:
        yield started


def justified(change: Any) -> Scenario:
    scenario = load_scenario(SCENARIOS / "personal-cloud-justified.scenario.yaml")
    data = copy.deepcopy(scenario.data)
    change(data["resume"]["answers"]["await_answer"], data)
    return Scenario(scenario.name, scenario.path, data)


def test_the_shipped_scenario_answers_as_an_allowed_approver(host: PluginHost,
                                                             fleet: MockFleet) -> None:
    result = run_scenario(justified(lambda answer, data: None), host, fleet)
    assert result.passed, result.explain(every=True)
    assert result.runs[0]["steps"]["await_answer"]["output"]["by"] == PRIYA


@pytest.mark.parametrize(("change", "who"), [
    (lambda answer: answer.update(by="mallory@example.com"), "mallory@example.com"),
    (lambda answer: answer.pop("by"), "scenario"),  # no `by`: answered as "scenario"
])
def test_a_scenario_answer_by_someone_not_allowed_is_refused(host: PluginHost,
                                                             fleet: MockFleet, change: Any,
                                                             who: str) -> None:
    result = run_scenario(justified(lambda answer, data: change(answer)), host, fleet)
    assert not result.passed
    why = f"{who} may not answer (allowed: {PRIYA})"
    text = result.explain(every=True)
    assert ("model-to-personal-cloud-or-genai: step await_answer expected succeeded, got "
            f"waiting (its answer was refused: {why})") in text
    assert f"run expected succeeded, got waiting (answers refused: await_answer: {why})" in text
    [record] = result.runs
    assert record["status"] == "waiting" and record["refused_answers"] == {"await_answer": why}
    assert not any(c.path.endswith("/comment") for _, c in result.calls)  # nothing recorded


def test_a_scenario_can_expect_the_refusal(host: PluginHost, fleet: MockFleet) -> None:
    def refused(answer: dict[str, Any], data: dict[str, Any]) -> None:
        answer["by"] = "mallory@example.com"
        data["expect"] = {"status": "waiting",
                          "steps": {"await_answer": "waiting", "record_answer": "pending"},
                          "no_calls": [{"mock": "jira", "method": "POST",
                                        "path": "/rest/api/3/issue/{key}/comment"}]}

    result = run_scenario(justified(refused), host, fleet)
    assert result.passed, result.explain(every=True)


def test_a_refused_answer_then_the_deadline_fails_the_wait(host: PluginHost,
                                                           fleet: MockFleet) -> None:
    def expire(answer: dict[str, Any], data: dict[str, Any]) -> None:
        answer["by"] = "mallory@example.com"
        data["resume"]["expire"] = True
        data["expect"] = {"status": "succeeded",
                          "steps": {"await_answer": "failed", "escalate": "succeeded"}}

    result = run_scenario(justified(expire), host, fleet)
    assert result.passed, result.explain(every=True)
