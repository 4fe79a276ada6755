"""Scenario tests of the access playbook: the scenario format (docs/scenarios.md), with an
access request as its `event`, run through the policy's decision and the playbook as the
access desk runs them, against the mock vendors.

    event:                       # what a person asks (as POST /v1/access-requests takes it)
      requester: ana@corp.example
      model: fraud-detector
      justification: retraining on the Q3 data, ticket ML-1234
      duration_hours: 8          # optional (the policy's default)
      tags: {sensitivity: restricted, owner: omar@corp.example}   # the model's registry tags
      at: "2026-12-02T10:00:00Z" # when it is asked (off hours and periods depend on it)

The files are `*.access-scenario.yaml` (the shipped ones in tests/access_scenarios/), so that
the triage collector, which would read the event as a file event, does not take them, nor
`crownguard validate` a directory of playbooks; `crownguard access test PATH...` and
tests/test_access_playbook.py run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import config_from_mapping
from ..errors import ScenarioError
from ..loader import load_file
from ..plugins import PluginHost
from ..scenarios import (
    MockFleet,
    Scenario,
    ScenarioResult,
    calls_since,
    check,
    differences,
    fast_retries,
    inject_faults,
    run_each,
    run_with_answers,
    set_up_vendors,
)
from ..spec import load_playbook
from ..triage.policy import Policy, policy_from_mapping
from .access_playbook import playbook_inputs, shipped_access_playbook
from .access_policy import access_policy, decide
from .access_store import NewRequest, parse_time

SUFFIX = ".access-scenario.yaml"


def access_scenario_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob(f"*{SUFFIX}"))
        elif path.exists():
            found.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or directory")
    return found


def _policy(scenario: Scenario) -> Policy:
    spec = scenario.data.get("policy") or {}
    if isinstance(spec, str):
        doc = load_file(scenario.base / spec)
        return policy_from_mapping(dict(doc.data or {}), doc=doc)
    return policy_from_mapping(spec)


def _request(event: Any, rules: Any) -> tuple[NewRequest, dict[str, str], datetime]:
    if not isinstance(event, dict):
        raise ScenarioError("an access scenario's event is one access request (a mapping)")
    missing = [k for k in ("requester", "model", "justification") if not event.get(k)]
    if missing:
        raise ScenarioError(f"event: the access request needs {', '.join(missing)}")
    hours = event.get("duration_hours")
    seconds = rules.default_seconds if hours is None else round(float(hours) * 3600)
    new = NewRequest(str(event["requester"]), str(event["model"]),
                     str(event.get("access", "read")), str(event["justification"]), seconds,
                     event.get("version"), event.get("alias"))
    at = parse_time(str(event["at"])) if event.get("at") else datetime.now(UTC)
    return new, {str(k): str(v) for k, v in (event.get("tags") or {}).items()}, at


def run_access_scenario(scenario: Scenario, host: PluginHost,
                        fleet: MockFleet) -> ScenarioResult:
    """Decide the scenario's request by policy, run the playbook on it, compare."""
    started = time.perf_counter()
    result = ScenarioResult(scenario)
    data = scenario.data
    connections = set_up_vendors(scenario, fleet)
    marks = inject_faults(scenario, fleet)
    config = config_from_mapping({"connections": connections}, host.connection_types)
    try:
        policy = _policy(scenario)
        rules = access_policy(policy)
        new, tags, at = _request(scenario.event_payload(), rules)
        decision = decide(new, tags, policy, at)
        path = scenario.base / data["playbook"] if data.get("playbook") \
            else shipped_access_playbook()
        playbook = fast_retries(load_playbook(path, host.actions), host,
                                float(data.get("backoff_scale", 0.01)))
        event, risk, variables = playbook_inputs("scenario", new, decision, rules, tags,
                                                 "slack" in config.connections)
        result.verdicts.append(decision)
        result.runs.append(run_with_answers(playbook, event, risk, host, config,
                                            {**variables, **(data.get("vars") or {})},
                                            data.get("resume")))
    finally:
        config.connections.close()
    result.calls = calls_since(fleet, marks)
    redact = config.redactor.redact
    result.mismatches = [redact(m) for m in [*_check_risk(scenario, result),
                                             *check(scenario, result, redact)]]
    result.seconds = time.perf_counter() - started
    return result


def _check_risk(scenario: Scenario, result: ScenarioResult) -> list[str]:
    expect = scenario.data["expect"]
    if not result.verdicts:
        return []
    risk = result.verdicts[0].risk
    problems = []
    if "detection" in expect or "playbooks" in expect:
        problems.append("expect: an access scenario has no detection or routing to check")
    if "risk" in expect:
        wanted = expect["risk"]
        if "level" in wanted and str(risk.level) != wanted["level"]:
            problems.append(f"risk level: expected {wanted['level']}, got {risk.level} "
                            f"({risk.summary()})")
        if risk.score < wanted.get("score_at_least", 0):
            problems.append(f"risk score: expected at least {wanted['score_at_least']}, got "
                            f"{risk.summary()}")
        if risk.score > wanted.get("score_at_most", 100):
            problems.append(f"risk score: expected at most {wanted['score_at_most']}, got "
                            f"{risk.summary()}")
        problems += [f"risk indicators: {m}" for m in differences(
            wanted.get("indicators", []), list(risk.indicators))]
        extra = [i for i in wanted.get("not_indicators", []) if i in risk.indicators]
        if extra:
            problems.append(f"risk indicators: did not expect {extra}")
    return problems


def run_access_scenario_files(files: list[Path], host: PluginHost
                              ) -> Iterator[ScenarioResult]:
    return run_each(files, host, run_access_scenario)
