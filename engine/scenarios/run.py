"""Running scenarios, the generic parts: set the vendors up, run a playbook (resuming waits
with the scenario's answers), collect the calls it made, and report a line per scenario.

What starts the runs is the caller's: the triage wing's `run_scenario` triages the event and
runs what routing chose (crownguard.engine.triage.scenarios).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..actions import RetryPolicy
from ..approvers import refusal, step_approvers
from ..conductor import Conductor
from ..errors import CrownguardError, SpecError
from ..kinds import EventType, RunStatus, StepStatus
from ..mocks import RecordedCall
from ..plugins import PluginHost
from ..runner import Runner
from ..spec import Playbook
from .format import Scenario, ScenarioResult, load_scenario
from .vendors import MockFleet, seed

RunScenario = Callable[[Scenario, PluginHost, MockFleet], ScenarioResult]


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


def set_up_vendors(scenario: Scenario, fleet: MockFleet) -> dict[str, Any]:
    """Reset and seed the mocks; the connections that point at them, with the scenario's own
    `connections` settings over them."""
    fleet.reset()
    seed(fleet, scenario.data.get("mocks") or {})
    connections = fleet.connections()
    for name, settings in (scenario.data.get("connections") or {}).items():
        connections.setdefault(name, {}).update(settings)
    return connections


def inject_faults(scenario: Scenario, fleet: MockFleet) -> dict[str, int]:
    """Inject the scenario's faults; the calls each mock has recorded so far (those after it
    are the scenario's, see calls_since)."""
    for fault in scenario.data.get("faults") or ():
        spec = {k: v for k, v in fault.items() if k not in ("mock", "kind")}
        fleet.get(fault["mock"]).inject(fault["kind"], **spec)
    return {name: len(mock.calls) for name, mock in fleet.mocks.items()}


def calls_since(fleet: MockFleet, marks: dict[str, int]) -> list[tuple[str, RecordedCall]]:
    """Every call the mocks received after `marks`, in the order they were made."""
    return sorted(((name, call) for name, mock in fleet.mocks.items()
                   for call in list(mock.calls)[marks.get(name, 0):]),
                  key=lambda item: item[1].at)


def run_with_answers(playbook: Playbook, event: dict[str, Any], risk: dict[str, Any],
                     host: PluginHost, config: Any, variables: dict[str, Any],
                     resume: dict[str, Any] | None) -> dict[str, Any]:
    """Run the playbook; if it waits and the scenario has `resume`, answer (or expire) its
    waits and resume it. Returns the last run record.

    Each answer goes through the approver check `crownguard approve` makes (approvers.refusal):
    one by someone the step does not allow is refused, its step stays waiting (or expires),
    and the record's `refused_answers` says why, for the expectations to show."""
    events: list[dict[str, Any]] = []
    runner = Runner(host, config, journal=events.append)
    record = runner.run(playbook, event, risk=risk, variables=variables)
    if record["status"] != RunStatus.WAITING or not resume:
        return record
    inputs = next(e["inputs"] for e in events if e["type"] == EventType.RUN_STARTED)
    now = datetime.now(UTC) + (timedelta(days=3650) if resume.get("expire") else timedelta())
    answers = {step: {"by": "scenario", "comment": None, "at": now.isoformat(), **answer}
               for step, answer in (resume.get("answers") or {}).items()}
    refused = _refused(playbook, inputs, events, answers, getattr(config, "approvers", []))
    answers = {step: answer for step, answer in answers.items() if step not in refused}
    if answers or resume.get("expire"):
        record = Runner(host, config, journal=events.append).resume(
            playbook, record["run_id"], inputs, list(events), answers, now)
    return {**record, "refused_answers": refused} if refused else record


def _refused(playbook: Playbook, inputs: dict[str, Any], events: list[dict[str, Any]],
             answers: dict[str, dict[str, Any]], fallback: list[str]) -> dict[str, str]:
    """Why each answer whose author the waiting step does not allow is refused."""
    steps = Conductor.replay(playbook, inputs, events).steps
    refused = {}
    for step, answer in answers.items():
        state = steps.get(step)
        if state is None or state.status != StepStatus.WAITING:
            continue  # nothing to answer there: the resume ignores it, as before
        reason = refusal(str(answer["by"]), step_approvers(state.waiting, fallback))
        if reason is not None:
            refused[step] = reason
    return refused


def run_each(files: list[Path], host: PluginHost,
             run: RunScenario) -> Iterator[ScenarioResult]:
    """Run scenarios one by one with `run` on one fleet of mocks, yielding each result as soon
    as it is known (the caller reports it: the CLI prints a line, pytest an item)."""
    with MockFleet(host) as fleet:
        for path in files:
            try:
                scenario = load_scenario(path)
            except SpecError as exc:
                yield ScenarioResult(Scenario(path.name, path, {}),
                                     error=f"invalid scenario: {exc.problems[0]}")
                continue
            try:
                yield run(scenario, host, fleet)
            except (CrownguardError, KeyError, TypeError, ValueError) as exc:
                yield ScenarioResult(scenario, error=f"cannot run: {_error_text(exc)}")


def _error_text(exc: Exception) -> str:
    if isinstance(exc, SpecError):
        return str(exc.problems[0])
    if isinstance(exc, KeyError):
        return f"missing key {exc}"
    return str(exc)
