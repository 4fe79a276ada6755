"""Running scenarios: set the vendors up, triage the event, run what routing chose (resuming
waits with the scenario's answers), compare, and report a line per scenario."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ..actions import RetryPolicy
from ..config import config_from_mapping
from ..errors import CrownguardError, SpecError
from ..loader import load_file
from ..plugins import PluginHost
from ..runner import Runner
from ..spec import Playbook
from ..triage.dedupe import InMemoryDedupe
from ..triage.pipeline import Verdict, build_triage
from ..triage.risk import policy_from_mapping
from .checks import check
from .format import Scenario, ScenarioResult, load_scenario
from .vendors import MockFleet, fingerprint_index, seed


def fast_retries(playbook: Playbook, host: PluginHost, scale: float) -> Playbook:
    """The playbook with every retry backoff scaled (attempts and Retry-After unchanged)."""
    if scale >= 1:
        return playbook
    steps = []
    for step in playbook.steps:
        action = host.actions.get(step.action)
        policy = step.retry or (action.retry if action else None)
        if policy is not None:
            step = replace(step, retry=RetryPolicy(policy.max_attempts,
                                                   policy.backoff_seconds * scale,
                                                   policy.max_backoff_seconds))
        steps.append(step)
    return replace(playbook, steps=tuple(steps))


def run_scenario(scenario: Scenario, host: PluginHost, fleet: MockFleet) -> ScenarioResult:
    """Set the vendors up, triage the event, run what routing chose, compare."""
    started = time.perf_counter()
    result = ScenarioResult(scenario)
    data = scenario.data
    fleet.reset()
    seed(fleet, data.get("mocks") or {})
    connections = fleet.connections()
    for name, settings in (data.get("connections") or {}).items():
        connections.setdefault(name, {}).update(settings)
    index = fingerprint_index(scenario, fleet, host, connections)
    for fault in data.get("faults") or ():
        spec = {k: v for k, v in fault.items() if k not in ("mock", "kind")}
        fleet.get(fault["mock"]).inject(fault["kind"], **spec)
    mark = {name: len(mock.calls) for name, mock in fleet.mocks.items()}
    config = config_from_mapping({"connections": connections}, host.connection_types)
    variables = dict(data.get("vars") or {})
    try:
        triage = build_triage(_policy(scenario), host, variables=variables,
                              playbooks=[scenario.base / p for p in _candidates(scenario)],
                              store=InMemoryDedupe(), index=index)
        scale = float(data.get("backoff_scale", 0.01))
        for verdict in triage.triage(scenario.event_payload(), claim=True):
            result.verdicts.append(verdict)
            for playbook in verdict.playbooks:
                result.runs.append(_run(fast_retries(playbook, host, scale), verdict, host,
                                        config, variables, data.get("resume")))
    finally:
        config.connections.close()
        if index is not None:
            index.close()
    result.calls = sorted(((name, call) for name, mock in fleet.mocks.items()
                           for call in list(mock.calls)[mark.get(name, 0):]),
                          key=lambda item: item[1].at)
    # A mismatch quotes request bodies: never with a credential the mocks handed out in it.
    redact = config.redactor.redact
    result.mismatches = [redact(m) for m in check(scenario, result, redact)]
    result.seconds = time.perf_counter() - started
    return result


def _candidates(scenario: Scenario) -> list[str]:
    data = scenario.data
    return ([data["playbook"]] if data.get("playbook") else []) + list(data.get("playbooks")
                                                                        or [])


def _policy(scenario: Scenario) -> Any:
    spec = scenario.data.get("policy") or {}
    if isinstance(spec, str):
        doc = load_file(scenario.base / spec)
        spec, source = dict(doc.data or {}), doc
    else:
        source = None
    if _candidates(scenario):  # the scenario names its playbooks: route among those only
        spec = {**spec, "routing": {**(spec.get("routing") or {}), "shipped_playbooks": False}}
    return policy_from_mapping(spec, doc=source)


def _run(playbook: Playbook, verdict: Verdict, host: PluginHost, config: Any,
         variables: dict[str, Any], resume: dict[str, Any] | None) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    runner = Runner(host, config, journal=events.append)
    record = runner.run(playbook, verdict.event_data, risk=verdict.risk_data,
                        variables=variables)
    if record["status"] != "waiting" or not resume:
        return record
    inputs = next(e["inputs"] for e in events if e["type"] == "run_started")
    now = datetime.now(UTC) + (timedelta(days=3650) if resume.get("expire") else timedelta())
    answers = {step: {"by": "scenario", "comment": None, "at": now.isoformat(), **answer}
               for step, answer in (resume.get("answers") or {}).items()}
    return Runner(host, config, journal=events.append).resume(
        playbook, record["run_id"], inputs, list(events), answers, now)




def run_scenario_files(files: list[Path], host: PluginHost, *, out: TextIO,
                       verbose: bool = False) -> list[ScenarioResult]:
    """Run scenarios one by one, a pass/fail line each, on one fleet of mocks."""
    results: list[ScenarioResult] = []
    with MockFleet(host) as fleet:
        for path in files:
            try:
                scenario = load_scenario(path)
            except SpecError as exc:
                result = ScenarioResult(Scenario(path.name, path, {}),
                                        error=f"invalid scenario: {exc.problems[0]}")
            else:
                try:
                    result = run_scenario(scenario, host, fleet)
                except (CrownguardError, KeyError, TypeError, ValueError) as exc:
                    result = ScenarioResult(scenario, error=f"cannot run: {_error_text(exc)}")
            results.append(result)
            mark = "PASS" if result.passed else "FAIL"
            line = f"{mark} {result.scenario.name}  ({path}, {result.seconds:.1f} s)"
            if not result.passed:
                line += f"\n     {result.explain(verbose)}"
            print(line, file=out, flush=True)
    return results


def _error_text(exc: Exception) -> str:
    if isinstance(exc, SpecError):
        return str(exc.problems[0])
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)
