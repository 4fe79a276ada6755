"""Scenario tests as data: the shipped scenarios pass, every shipped playbook has a happy and
a failure path, a wrong expectation fails with its reason, and `pytest` collects the files."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from crownguard.engine.errors import SpecError
from crownguard.engine.plugins import PluginHost
from crownguard.engine.scenarios import (
    MockFleet,
    Scenario,
    ScenarioError,
    collect_scenario_files,
    load_scenario,
)
from crownguard.engine.triage.router import shipped_playbooks_dir
from crownguard.engine.triage.scenarios import run_scenario, run_scenario_files

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "playbooks" / "scenarios"


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.from_entry_points()


@pytest.fixture(scope="module")
def fleet(host: PluginHost) -> Iterator[MockFleet]:
    with MockFleet(host) as started:
        yield started


def shipped(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.scenario.yaml")


def variant(name: str, change: Any) -> Scenario:
    """A shipped scenario with its data changed (same directory, so relative paths hold)."""
    scenario = shipped(name)
    data = copy.deepcopy(scenario.data)
    change(data)
    return Scenario(scenario.name, scenario.path, data)


# --- the shipped scenarios ---------------------------------------------------------------------


def test_every_shipped_scenario_passes(host: PluginHost) -> None:
    results = list(run_scenario_files(collect_scenario_files([SCENARIOS]), host))
    assert len(results) >= 17
    assert [(r.scenario.name, r.explain(True)) for r in results if not r.passed] == []


def _runs_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    expect = data["expect"]
    runs = dict(expect.get("runs") or {})
    if "status" in expect or "steps" in expect:
        chosen = expect.get("playbooks") or []
        name = chosen[0] if chosen else _routed_name(data)
        runs[name] = {k: expect[k] for k in ("status", "steps") if k in expect}
    return runs


def _routed_name(data: dict[str, Any]) -> str:
    """Scenarios that leave `playbooks` out still run one playbook; find which one by the
    steps they expect."""
    steps = set(data["expect"].get("steps") or {})
    for path in sorted(SCENARIOS.parent.glob("*.yaml")):
        book = yaml.safe_load(path.read_text())
        if steps <= {s["id"] for s in book["steps"]}:
            return str(book["name"])
    return "?"


def test_every_shipped_playbook_has_a_happy_and_a_failure_path_scenario() -> None:
    directory = shipped_playbooks_dir()
    assert directory is not None
    names = {yaml.safe_load(p.read_text())["name"] for p in directory.glob("*.yaml")}
    happy: set[str] = set()
    failing: set[str] = set()
    # The access playbook's scenarios (an access request, not a file event) live apart.
    access = [(p, "model-access-request")
              for p in (ROOT / "tests" / "access_scenarios").glob("*.access-scenario.yaml")]
    for path, known in [*((p, None) for p in SCENARIOS.glob("*.scenario.yaml")), *access]:
        data = yaml.safe_load(path.read_text())
        found = {known: data["expect"]} if known else _runs_of(data)
        for name, run in found.items():
            statuses = set((run.get("steps") or {}).values())
            if "failed" in statuses:
                failing.add(name)
            elif run.get("status") == "succeeded":
                happy.add(name)
    assert names - happy == set(), "playbooks without a happy-path scenario"
    assert names - failing == set(), "playbooks without a failure-path scenario"


# --- mismatches explain themselves -------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["expect"]["steps"].update(nudge="failed"),
     "low-risk-model-nudge: step nudge expected failed, got succeeded"),
    (lambda d: d["expect"].update(playbooks=["model-to-removable-media"]),
     "playbooks: expected ['model-to-removable-media'], routing chose ['low-risk-model-nudge'] "
     "(model-to-removable-media: trigger is false)"),
    (lambda d: d["expect"]["calls"][0].update(count=2),
     "call slack POST /api/chat.postMessage body {'text': {'$contains': 'defect-detector.onnx'}}:"
     " expected 2, got 1"),
    (lambda d: d["expect"]["calls"][0]["body"].update(text={"$contains": "holiday.jpg"}),
     "expected 1, got 0 (slack received: POST /api/chat.postMessage {'channel': 'D"),
    (lambda d: d["expect"].update(risk={"level": "high"}),
     "risk level: expected high, got low (27 low: onnx model file"),
    (lambda d: d["expect"].update(detection={"format": "gguf"}),
     "detection: format: expected 'gguf', got 'onnx'"),
    (lambda d: d["expect"]["outputs"].update(nudge={"asked_justification": True}),
     "step nudge output asked_justification: expected True, got False"),
    (lambda d: d["expect"]["no_calls"].append({"mock": "slack", "method": "POST"}),
     "call slack POST *: expected none, got 2"),
    (lambda d: d["expect"].update(errors={"nudge": "users_not_found"}),
     "step nudge error expected to contain 'users_not_found', got ''"),
])
def test_a_wrong_expectation_fails_with_its_reason(host: PluginHost, fleet: MockFleet,
                                                   change: Any, message: str) -> None:
    result = run_scenario(variant("low-risk-email-nudge", change), host, fleet)
    assert not result.passed
    assert message in result.explain(every=True)


def test_the_first_mismatch_is_shown_and_the_rest_counted(host: PluginHost,
                                                          fleet: MockFleet) -> None:
    def change(data: dict[str, Any]) -> None:
        data["expect"].update(status="failed", steps={"nudge": "skipped"})

    result = run_scenario(variant("low-risk-email-nudge", change), host, fleet)
    assert result.explain().endswith("(and 1 more)")
    assert len(result.mismatches) == 2


def test_a_mismatch_never_quotes_a_credential(host: PluginHost, fleet: MockFleet) -> None:
    from crownguard.plugins.falcon.mock import DEFAULT_CLIENT_SECRET

    def change(data: dict[str, Any]) -> None:
        data["expect"]["calls"] = [{"mock": "falcon", "method": "POST", "path": "/oauth2/token",
                                    "body": {"grant_type": "password"}}]

    result = run_scenario(variant("usb-copy-quarantined", change), host, fleet)
    text = result.explain(every=True)
    assert "falcon received: POST /oauth2/token" in text
    assert DEFAULT_CLIENT_SECRET not in text and "falcon-secret" not in text
    assert "'client_secret': '***'" in text


# --- set-up ------------------------------------------------------------------------------------


def test_an_invalid_scenario_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.scenario.yaml"
    path.write_text("name: bad\nevent: {}\nexpect:\n  status: done\n")
    with pytest.raises(SpecError) as info:
        load_scenario(path)
    assert str(info.value.problems[0]).startswith(f"{path}:4: 'expect/status'")
    path.write_text("name: no event\nexpect: {}\n")
    with pytest.raises(SpecError):
        load_scenario(path)


@pytest.mark.parametrize(("mocks", "message"), [
    ({"nosuch": {"users": []}}, "no mock server 'nosuch'"),
    ({"okta": {"hosts": []}}, "mocks.okta: no seeding section 'hosts' (known: call, set, users)"),
    ({"falcon": {"set": {"hosts": {}}}}, "'hosts' is not a setting of the falcon mock"),
    ({"falcon": {"set": {"_expire_countdown": 1}}}, "'_expire_countdown' is not a setting"),
    ({"falcon": {"call": [{"method": "stop"}]}}, "'stop' is not a helper of the falcon mock"),
    ({"falcon": {"call": [{"method": "device_action"}]}}, "'device_action' is not a helper"),
])
def test_seeding_mistakes_are_named(host: PluginHost, fleet: MockFleet, mocks: dict[str, Any],
                                    message: str) -> None:
    scenario = variant("low-risk-email-nudge", lambda d: d.update(mocks=mocks))
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_scenario(scenario, host, fleet)


def test_fingerprints_from_a_plugin_that_is_no_registry_are_named(host: PluginHost,
                                                                  fleet: MockFleet) -> None:
    scenario = variant("low-risk-email-nudge", lambda d: d.update(fingerprints="okta"))
    with pytest.raises(ScenarioError, match=r"'okta' is not a model registry plugin here "
                                            r"\(no okta.list_model_versions, okta.list_model_files\)"):
        run_scenario(scenario, host, fleet)


def test_a_token_expiring_mid_run_is_refreshed_once(host: PluginHost, fleet: MockFleet) -> None:
    def change(data: dict[str, Any]) -> None:
        data["mocks"]["falcon"]["set"] = {"containment_polls": 0, "rtr_polls": 0}
        data["mocks"]["falcon"]["call"] = [{"method": "expire_tokens_after", "args": [3]}]
        data["expect"]["calls"] = [{"mock": "falcon", "method": "POST", "path": "/oauth2/token",
                                    "count": 2}]

    result = run_scenario(variant("usb-copy-quarantined", change), host, fleet)
    assert result.passed, result.explain(every=True)
    steps = result.runs[0]["steps"]
    assert steps["quarantine_copy"]["attempts"] == 1


def test_a_malformed_vendor_answer_fails_the_step_clearly(host: PluginHost,
                                                         fleet: MockFleet) -> None:
    def change(data: dict[str, Any]) -> None:
        data["faults"] = [{"mock": "okta", "kind": "malformed", "method": "GET",
                           "path": "/api/v1/users/dana.whitfield@example.com", "times": None}]
        data["expect"] = {"status": "succeeded",
                          "steps": {"suspend": "failed", "escalate": "succeeded"}}

    result = run_scenario(variant("departing-usb-registered-model", change), host, fleet)
    assert result.passed, result.explain(every=True)
    error = result.runs[0]["steps"]["suspend"]["error"]
    assert "okta" in error and "JSON" in error
    assert result.runs[0]["steps"]["suspend"]["attempts"] == 1  # malformed is not retried


def test_a_normalised_event_list_and_inline_policy(host: PluginHost, fleet: MockFleet) -> None:
    def change(data: dict[str, Any]) -> None:
        data["policy"] = {"levels": {"low": 5, "medium": 10, "high": 20, "critical": 95}}
        data["expect"] = {"risk": {"level": "high"},
                          "playbooks": ["model-to-personal-cloud-or-genai"],
                          "status": "waiting"}
        data["mocks"] = {"slack": {"users": [{"email": "alex.kim@example.com"}]}}

    result = run_scenario(variant("low-risk-email-nudge", change), host, fleet)
    assert result.passed, result.explain(every=True)


def test_a_named_playbook_is_the_only_candidate(host: PluginHost, fleet: MockFleet,
                                                tmp_path: Path) -> None:
    book = tmp_path / "mine.yaml"
    book.write_text("name: mine\ntrigger: {if: \"event.file.is_model\"}\n"
                    "steps: [{id: hello, action: core.noop, with: {who: \"${{ event.actor.email }}\"}}]\n")
    scenario_path = tmp_path / "mine.scenario.yaml"
    scenario_path.write_text(yaml.safe_dump({
        "playbook": "mine.yaml",
        "event": {"id": "e1", "time": "2026-11-24T11:00:00Z", "actor": {"email": "a@b.example"},
                  "file": {"name": "m.onnx"}, "destination": {"kind": "email"}},
        "expect": {"playbooks": ["mine"], "status": "succeeded",
                   "outputs": {"hello": {"who": "a@b.example"}}}}))
    result = run_scenario(load_scenario(scenario_path), host, fleet)
    assert result.passed, result.explain(every=True)


# --- the pytest collector ----------------------------------------------------------------------


def test_pytest_collects_scenario_files(pytester: pytest.Pytester) -> None:
    good = (SCENARIOS / "low-risk-email-nudge.scenario.yaml").read_text()
    pytester.makefile(".scenario.yaml", good=good)
    pytester.makefile(".scenario.yaml", bad=good.replace("nudge_failed: skipped",
                                                         "nudge_failed: succeeded"))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*low-risk-model-nudge: step nudge_failed expected succeeded, "
                                 "got skipped*"])


# --- compensation ------------------------------------------------------------------------------


def _departing_run_and_undo(host: PluginHost, fleet: MockFleet) -> tuple[Any, dict[str, Any]]:
    """Run the likely-theft response on the mocks, then `crownguard undo`'s plan for it."""
    from crownguard.engine.config import config_from_mapping
    from crownguard.engine.runner import Runner
    from crownguard.engine.scenarios import seed
    from crownguard.engine.triage.pipeline import build_triage
    from crownguard.engine.triage.risk import load_policy
    from crownguard.engine.triage.scenarios import fingerprint_index
    from crownguard.engine.undo import plan_undo, undo_playbook

    scenario = shipped("departing-usb-registered-model")
    fleet.reset()
    seed(fleet, scenario.data["mocks"])
    connections = fleet.connections()
    config = config_from_mapping({"connections": connections}, host.connection_types)
    triage = build_triage(load_policy(), host,
                          index=fingerprint_index(scenario, fleet, host, connections))
    try:
        [verdict] = triage.triage(scenario.event_payload(), claim=True)
        [playbook] = verdict.playbooks
        events: list[dict[str, Any]] = []
        record = Runner(host, config, journal=events.append).run(
            playbook, verdict.event_data, risk=verdict.risk_data)
        assert record["status"] == "succeeded"
        calls = plan_undo(playbook, events, host)
        undo = undo_playbook(playbook, calls)
        return calls, Runner(host, config).run(undo, {}, variables=undo.vars)
    finally:
        config.connections.close()
        triage.close()


def test_the_departing_response_is_undone_by_its_documented_compensations(
        host: PluginHost, fleet: MockFleet) -> None:
    """The undo paths playbooks/README.md promises: every change of the likely-theft response
    is reversed by `crownguard undo`'s plan, latest first."""
    calls, undone = _departing_run_and_undo(host, fleet)
    assert {c.action for c in calls} == {
        "falcon.lift_containment", "falcon.restore_file", "mlflow.release_model_version",
        "okta.unsuspend_user", "servicenow.close_record", "jira.close_issue"}
    steps = {k: (s["status"], s["error"]) for k, s in undone["steps"].items()}
    for step in ("undo_contain", "undo_quarantine_file", "undo_quarantine_model",
                 "undo_suspend"):
        assert steps[step] == ("succeeded", None), steps
    falcon, okta, mlflow = fleet.get("falcon"), fleet.get("okta"), fleet.get("mlflow")
    [device] = [d for d, h in falcon.hosts.items() if h.hostname == "ACME-LT-0412"]
    assert falcon.hosts[device].status == "normal"
    assert falcon.file_on(device, "E:/backup/models/acme-support-llama3-8b-ft.safetensors")
    assert okta.status_of("dana.whitfield@example.com") == "ACTIVE"
    assert mlflow.aliases("acme-support-llama3-8b-ft") == {"production": "3"}


def test_undo_closes_the_hr_case(host: PluginHost, fleet: MockFleet) -> None:
    _, undone = _departing_run_and_undo(host, fleet)
    assert undone["steps"]["undo_hr_case"]["output"]["changed"] is True
    assert fleet.get("servicenow").records("sn_hr_core_case")[0]["state"] == "3"


def test_undo_closes_the_soc_ticket(host: PluginHost, fleet: MockFleet) -> None:
    _, undone = _departing_run_and_undo(host, fleet)
    assert undone["steps"]["undo_soc_ticket"]["status"] == "succeeded"
