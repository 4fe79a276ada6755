"""Scenario tests, the triage part: the scenario's event goes through the same triage as
`crownguard respond` (normalise, detect, score, route), the chosen playbooks run against the
mock vendors, and the verdicts are checked against `expect.detection`, `risk` and `playbooks`
(the runs and calls by engine.scenarios). docs/scenarios.md is the reference.

    run_scenario(scenario, host, fleet) -> ScenarioResult
    run_scenario_files(files, host, out=sys.stdout) -> [ScenarioResult]   (a line each)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..config import Config, config_from_mapping
from ..kinds import RunStatus
from ..loader import load_file
from ..plugins import PluginHost
from ..runner import Runner
from ..scenarios import (
    MockFleet,
    Scenario,
    ScenarioError,
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
from .dedupe import InMemoryDedupe
from .detection.fingerprints import FingerprintIndex, ModelVersionRef, RefreshReport
from .detection.structure import HEAD_LIMIT
from .pipeline import Verdict, build_triage
from .policy import Policy, policy_from_mapping


def run_scenario(scenario: Scenario, host: PluginHost, fleet: MockFleet) -> ScenarioResult:
    """Set the vendors up, triage the event, run what routing chose, compare."""
    started = time.perf_counter()
    result = ScenarioResult(scenario)
    data = scenario.data
    connections = set_up_vendors(scenario, fleet)
    index = fingerprint_index(scenario, fleet, host, connections)
    marks = inject_faults(scenario, fleet)
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
                result.runs.append(run_with_answers(
                    fast_retries(playbook, host, scale), verdict.event_data, verdict.risk_data,
                    host, config, variables, data.get("resume")))
    finally:
        config.connections.close()
        if index is not None:
            index.close()
    result.calls = calls_since(fleet, marks)
    # A mismatch quotes request bodies: never with a credential the mocks handed out in it.
    redact = config.redactor.redact
    result.mismatches = [redact(m) for m in [*check_verdicts(scenario, result),
                                             *check(scenario, result, redact)]]
    result.seconds = time.perf_counter() - started
    return result


def run_scenario_files(files: list[Path], host: PluginHost) -> Iterator[ScenarioResult]:
    """Run scenarios one by one on one fleet of mocks, each result as soon as it is known."""
    return run_each(files, host, run_scenario)


def _candidates(scenario: Scenario) -> list[str]:
    data = scenario.data
    return ([data["playbook"]] if data.get("playbook") else []) + list(data.get("playbooks")
                                                                        or [])


def _policy(scenario: Scenario) -> Policy:
    spec = scenario.data.get("policy") or {}
    if isinstance(spec, str):
        doc = load_file(scenario.base / spec)
        spec, source = dict(doc.data or {}), doc
    else:
        source = None
    if _candidates(scenario):  # the scenario names its playbooks: route among those only
        spec = {**spec, "routing": {**(spec.get("routing") or {}), "shipped_playbooks": False}}
    return policy_from_mapping(spec, doc=source)


# --- checking the verdicts ---------------------------------------------------------------------


def check_verdicts(scenario: Scenario, result: ScenarioResult) -> list[str]:
    """Every way what triage made of the event differs from `expect` (detection, risk,
    playbooks), the most telling mismatches of a scenario: they come before the runs'."""
    expect = scenario.data["expect"]
    problems: list[str] = []
    verdicts: list[Verdict] = result.verdicts
    verdict = verdicts[0] if verdicts else None
    if "detection" in expect and verdict is not None:
        detection = verdict.detection.to_dict()
        problems += [f"detection: {m}" for m in differences(expect["detection"], detection)]
    if "risk" in expect and verdict is not None:
        problems += _check_risk(expect["risk"], verdict)
    if "playbooks" in expect:
        chosen = [p.name for v in verdicts for p in v.playbooks]
        if sorted(chosen) != sorted(expect["playbooks"]):
            why = "; ".join(f"{d.playbook}: {d.reason}" for v in verdicts
                            for d in v.decisions if d.playbook in expect["playbooks"]
                            and not d.chosen)
            problems.append(f"playbooks: expected {expect['playbooks']}, routing chose {chosen}"
                            + (f" ({why})" if why else ""))
    return problems


def _check_risk(expect: dict[str, Any], verdict: Verdict) -> list[str]:
    risk = verdict.risk
    found = []
    if "level" in expect and str(risk.level) != expect["level"]:
        found.append(f"risk level: expected {expect['level']}, got {risk.level} ({risk.summary()})")
    if risk.score < expect.get("score_at_least", 0):
        found.append(f"risk score: expected at least {expect['score_at_least']}, got "
                     f"{risk.summary()}")
    if risk.score > expect.get("score_at_most", 100):
        found.append(f"risk score: expected at most {expect['score_at_most']}, got "
                     f"{risk.summary()}")
    missing = [i for i in expect.get("indicators", []) if i not in risk.indicators]
    if missing:
        found.append(f"risk indicators: missing {missing} (got {risk.indicators})")
    extra = [i for i in expect.get("not_indicators", []) if i in risk.indicators]
    if extra:
        found.append(f"risk indicators: did not expect {extra}")
    return found


# --- the fingerprint index a scenario's `fingerprints` describe ---------------------------------


def fingerprint_index(scenario: Scenario, fleet: MockFleet, host: PluginHost,
                      connections: dict[str, Any]) -> FingerprintIndex | None:
    spec = scenario.data.get("fingerprints")
    if not spec:
        return None
    index = FingerprintIndex()
    if isinstance(spec, str):  # a registry plugin's name: index what its mock holds
        refresh_from_registry(index, host, connections, spec)
        return index
    for item in spec:
        ref = ModelVersionRef(item.get("registry", "mlflow"), item["model"], str(item["version"]),
                              item.get("sensitivity"))
        index.add_version(ref, {"files": [{"path": item.get("path", "model/model"),
                                           "sha256": item["sha256"]}]})
    return index


# A registry plugin lists versions and their files with these two actions (the mlflow
# plugin's contract; the huggingface plugin offers the same two, and another registry plugin
# that does is indexed the same way). Files are listed only for versions new or changed since
# the index last saw them, one run per version.
_LIST_VERSIONS = """
name: fingerprint-refresh-versions
steps:
  - id: versions
    action: {registry}.list_model_versions
"""
_LIST_FILES = """
name: fingerprint-refresh-files
steps:
  - id: files
    action: {registry}.list_model_files
    with: {{name: "${{{{ vars.name }}}}", version: "${{{{ vars.version }}}}",
            head_bytes: "${{{{ vars.head_bytes }}}}"}}
"""
REGISTRY_ACTIONS = ("list_model_versions", "list_model_files")
Progress = Callable[[int, int, ModelVersionRef], None]


def refresh_from_registry(index: FingerprintIndex, host: PluginHost,
                          connections: dict[str, Any], registry: str) -> int:
    """Index every version a registry plugin lists, with their files, through the plugin's
    own `list_model_versions` and `list_model_files` actions (the path a scheduled refresh
    takes); returns the number of versions the registry lists."""
    config = config_from_mapping({"connections": connections}, host.connection_types)
    try:
        report = refresh_registry(index, host, config, registry)
    finally:
        config.connections.close()
    if report.errors:
        raise ScenarioError(f"fingerprint refresh from {registry} failed: "
                            + "; ".join(f"{k}: {v}" for k, v in report.errors.items()))
    return report.versions


def refresh_registry(index: FingerprintIndex, host: PluginHost, config: Config, registry: str,
                     *, head_bytes: int = HEAD_LIMIT, prune: bool = False, force: bool = False,
                     progress: Progress | None = None) -> RefreshReport:
    """Bring `index` up to date with a registry plugin: its versions listed, the files of the
    new or changed ones listed (with the first `head_bytes` of each for structural
    fingerprints), `prune` dropping versions the registry no longer lists. `progress(i, n,
    ref)` is told before each version's files are listed; `force` lists every version again.
    A version whose files cannot be listed is in the report's `errors`; the versions listing
    failing raises ScenarioError."""
    from ..spec import parse_playbook

    missing = [f"{registry}.{name}" for name in REGISTRY_ACTIONS
               if f"{registry}.{name}" not in host.actions]
    if missing:
        raise ScenarioError(f"fingerprints: '{registry}' is not a model registry plugin here "
                            f"(no {', '.join(missing)})")
    runner = Runner(host, config)
    record = runner.run(parse_playbook(_LIST_VERSIONS.format(registry=registry), host.actions))
    if record["status"] != RunStatus.SUCCEEDED:
        raise ScenarioError(f"fingerprint refresh from {registry} failed: {_errors(record)}")
    refs = [ModelVersionRef.from_listing(v, registry=registry)
            for v in record["steps"]["versions"]["output"]["versions"]]
    files = parse_playbook(_LIST_FILES.format(registry=registry), host.actions)
    stale = refs if force else index.stale(refs)
    done = 0

    def list_files(ref: ModelVersionRef) -> Any:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, len(stale), ref)
        run = runner.run(files, variables={"name": ref.model, "version": ref.version,
                                           "head_bytes": head_bytes})
        if run["status"] != RunStatus.SUCCEEDED:
            raise ScenarioError(_errors(run))
        return run["steps"]["files"]["output"]

    report = index.refresh(refs, list_files, prune=prune, force=force)
    report.versions = len(refs)
    return report


def _errors(record: dict[str, Any]) -> str:
    return "; ".join(f"{k}: {s['error']}" for k, s in record["steps"].items() if s["error"]) \
        or str(record.get("status"))
