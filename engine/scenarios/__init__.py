"""Scenario tests as data: an event, the vendors' state and faults, the expected calls and
outcome, in one YAML file (`*.scenario.yaml`). docs/scenarios.md is the reference.

    name: a departing engineer copies fraud-model v7 to USB
    event_file: ../../plugins/incydr/samples/model-to-removable-media.json   # or event: {...}
    fingerprints: [{model: fraud-model, version: "7", sensitivity: restricted, sha256: ...}]
    mocks: {falcon: {hosts: [...]}, okta: {users: [...]}}     # seeding, per mock
    faults: [{mock: okta, kind: status, status: 503, path: ..., times: 1}]
    resume: {answers: {await_answer: {decision: approve, by: ...}}}   # or {expire: true}
    expect:
      playbooks: [departing-employee-model-exfil]
      status: succeeded
      steps: {contain: succeeded}
      calls: [{mock: falcon, method: POST, path: /devices/entities/devices-actions/v2,
               query: {action_name: contain}}]

Here, the generic parts: the file format and its schema, loading with file:line problems, the
mock fleet and its seeding, running a playbook with answers and checking its runs and vendor
calls. The triage wing (crownguard.engine.triage.scenarios) puts the event through the same
triage as `crownguard respond` (normalise, detect, score, route) and runs the chosen playbooks
against the mock vendor servers, started in-process and pointed at by their own
`connection_settings()`, exactly as the demo does. Retry backoffs are
scaled by `backoff_scale` (default 0.01) so suites run in seconds; attempts and Retry-After
are unchanged.
"""

from ..errors import ScenarioError
from .checks import check, differences
from .format import (
    SCENARIO_SCHEMA,
    SCENARIO_SUFFIXES,
    Scenario,
    ScenarioResult,
    collect_scenario_files,
    load_scenario,
)
from .run import (
    RunScenario,
    calls_since,
    fast_retries,
    inject_faults,
    run_each,
    run_with_answers,
    set_up_vendors,
)
from .vendors import MockFleet, seed

__all__ = [
    "SCENARIO_SCHEMA",
    "SCENARIO_SUFFIXES",
    "MockFleet",
    "RunScenario",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "calls_since",
    "check",
    "collect_scenario_files",
    "differences",
    "fast_retries",
    "inject_faults",
    "load_scenario",
    "run_each",
    "run_with_answers",
    "seed",
    "set_up_vendors",
]
