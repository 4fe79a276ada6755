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

The event goes through the same triage as `crownguard respond` (normalise, detect, score,
route) and the chosen playbooks run against the mock vendor servers, started in-process and
pointed at by their own `connection_settings()`, exactly as the demo does. Retry backoffs are
scaled by `backoff_scale` (default 0.01) so suites run in seconds; attempts and Retry-After
are unchanged.
"""

from .checks import check
from .format import (
    SCENARIO_SCHEMA,
    Scenario,
    ScenarioError,
    ScenarioResult,
    collect_scenario_files,
    load_scenario,
)
from .run import fast_retries, run_scenario, run_scenario_files
from .vendors import MockFleet, fingerprint_index, refresh_from_mlflow, seed

__all__ = [
    "SCENARIO_SCHEMA",
    "MockFleet",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "check",
    "collect_scenario_files",
    "fast_retries",
    "fingerprint_index",
    "load_scenario",
    "refresh_from_mlflow",
    "run_scenario",
    "run_scenario_files",
    "seed",
]
