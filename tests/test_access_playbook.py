"""The shipped model-access-request playbook: its scenarios (one per branch), and the desk
deciding through it, the run in the journal beside the request."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import crownguard.plugins.mlflow as mlflow_plugin
import crownguard.plugins.slack as slack_plugin
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import MockFleet, Scenario, load_scenario
from crownguard.engine.service.access import AccessDesk, ActionRegistry, Caller
from crownguard.engine.service.access_playbook import PLAYBOOK, AccessPlaybook
from crownguard.engine.service.access_scenarios import (
    access_scenario_files,
    run_access_scenario,
    run_access_scenario_files,
)
from crownguard.engine.service.access_store import AccessError, AccessState, AccessStore
from crownguard.engine.service.settings import Role
from crownguard.engine.triage.policy import policy_from_mapping
from crownguard.plugins.mlflow.mock import MlflowMock

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tests" / "access_scenarios"
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
WHY = "retraining the fraud model on the Q3 data"
POLICY = {"access": {"models": {"tag": "sensitivity", "values": ["restricted"]},
                     "auto_grant_below": 25, "two_approvers_from": 60,
                     "approvers": {"owner_tag": "owner"},
                     "people": {"dana@corp.example": {"departure_date": "2026-12-18"}}}}


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture(scope="module")
def fleet(host: PluginHost) -> Any:
    with MockFleet(host) as started:
        yield started


def test_every_access_scenario_passes(host: PluginHost) -> None:
    results = list(run_access_scenario_files(access_scenario_files([SCENARIOS]), host))
    assert len(results) >= 6
    assert [(r.scenario.name, r.explain(True)) for r in results if not r.passed] == []


def test_every_branch_has_a_scenario() -> None:
    made = set()
    for path in access_scenario_files([SCENARIOS]):
        decision = yaml.safe_load(path.read_text())["expect"]["outputs"]["answer"]["decision"]
        made.add((decision["outcome"], decision.get("approvals_required")))
    assert {("grant", 0), ("ask", 1), ("ask", 2), ("deny", None), ("not_needed", None)} <= made


def test_the_triage_collector_does_not_take_access_scenarios() -> None:
    from crownguard.engine.scenarios import collect_scenario_files
    assert collect_scenario_files([SCENARIOS]) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["expect"]["outputs"]["answer"]["decision"].update(outcome="ask"),
     "step answer output decision.outcome: expected 'ask', got 'grant'"),
    (lambda d: d["expect"].update(risk={"level": "high"}), "risk level: expected high, got info"),
    (lambda d: d["event"].update(at="2026-12-06T23:00:00Z"),  # Sunday night: off hours
     "risk level: expected info, got low (20 low: off hours: 23:00 on a Sunday"),
    (lambda d: d["event"]["tags"].update(sensitivity="public"),
     "model-access-request: step grant_low_risk expected succeeded, got skipped"),
])
def test_a_wrong_expectation_fails_with_its_reason(host: PluginHost, fleet: MockFleet,
                                                   change: Any, message: str) -> None:
    scenario = load_scenario(SCENARIOS / "low-risk-granted.access-scenario.yaml")
    data = copy.deepcopy(scenario.data)
    change(data)
    result = run_access_scenario(Scenario(scenario.name, scenario.path, data), host, fleet)
    assert not result.passed
    assert message in result.explain(True)


# --- the desk decides through the playbook ----------------------------------------------------


@pytest.fixture
def mock(mock_server: Callable[..., Any]) -> MlflowMock:
    server = mock_server(MlflowMock, auth="basic")
    assert isinstance(server, MlflowMock)
    server.default_permission = "NO_PERMISSIONS"
    server.add_version("fraud", {"weights.bin": b"w"})
    server.tag_model("fraud", {"sensitivity": "restricted", "owner": "omar@corp.example"})
    for user in ("alice@corp.example", "dana@corp.example"):
        server.add_user(user, "pw")
    return server


@pytest.fixture
def desk(mock: MlflowMock, isolated_host: Callable[..., PluginHost],
         mock_config: Callable[..., Any], tmp_path: Path) -> AccessDesk:
    host = isolated_host(mlflow_plugin, slack_plugin)  # the playbook's actions
    config = mock_config("mlflow", mock, host=host)
    journal = SQLiteJournal(tmp_path / "journal.db")
    return AccessDesk(AccessStore(journal), policy_from_mapping(POLICY),
                      ActionRegistry(host, config), AccessPlaybook(host, config, journal))


def test_a_low_risk_request_is_decided_by_a_run_in_the_journal(desk: AccessDesk,
                                                               mock: MlflowMock) -> None:
    made = desk.request("alice@corp.example", "fraud", WHY, now=NOON)
    assert made.state == AccessState.GRANTED
    decision = made.decision or {}
    assert decision["reason"].startswith("granted by policy: risk 20 (low): the model is "
                                         "tagged restricted, below 25; justification recorded")
    run = desk.store.journal.get_run(decision["run_id"])
    assert (run.playbook, str(run.status)) == (PLAYBOOK, "succeeded")
    assert mock.grants == {("alice@corp.example", "fraud"): "READ"}
    assert desk.store.journal.verify() == []


def test_the_playbook_thresholds_are_the_policys(desk: AccessDesk, mock: MlflowMock) -> None:
    desk.policy = policy_from_mapping({"access": {**POLICY["access"], "auto_grant_below": 15,
                                                  "two_approvers_from": 20}})
    made = desk.request("alice@corp.example", "fraud", WHY, now=NOON)
    assert (made.state, made.approvals_required) == (AccessState.PENDING, 2)
    assert "two approvals needed from omar@corp.example" in (made.decision or {})["reason"]


def test_a_leaver_is_denied_until_an_admin_overrides(desk: AccessDesk,
                                                     mock: MlflowMock) -> None:
    made = desk.request("dana@corp.example", "fraud", WHY, now=NOON)
    assert made.state == AccessState.DENIED
    assert "notice period" in (made.decision or {})["reason"]
    with pytest.raises(AccessError, match="only an admin can override"):
        desk.approve(made.id, Caller("omar@corp.example", Role.APPROVER))
    granted = desk.approve(made.id, Caller("ciso@corp.example", Role.ADMIN), "handover")
    assert granted.state == AccessState.GRANTED
    assert mock.grants == {("dana@corp.example", "fraud"): "READ"}


def test_a_playbook_without_an_answer_leaves_the_policys_decision(
        desk: AccessDesk, tmp_path: Path) -> None:
    broken = tmp_path / "no-answer.yaml"
    broken.write_text(yaml.safe_dump({"name": PLAYBOOK, "steps": [
        {"id": "nothing", "action": "core.noop"}]}))
    assert desk.playbook is not None
    desk.playbook.path, desk.playbook._playbook = broken, None
    made = desk.request("alice@corp.example", "fraud", WHY, now=NOON)
    assert made.state == AccessState.GRANTED
    assert "the policy's decision: the model-access-request run" in \
        (made.decision or {})["reason"]
