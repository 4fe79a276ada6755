"""The scenario file: its JSON Schema, loading with file:line problems, finding files, and
the result a run of one produces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Problem, ScenarioError, SpecError
from ..kinds import ENDED, ApprovalDecision, FaultKind, RunStatus
from ..loader import Document, load_file
from ..mocks import RecordedCall
from ..validation import describe_schema_error, schema_errors

SCENARIO_SUFFIXES = (".scenario.yaml", ".scenario.yml")
_CALL = {"type": "object", "additionalProperties": False, "required": ["mock"],
         "properties": {"mock": {"type": "string"}, "method": {"type": "string"},
                        "path": {"type": "string"}, "query": {"type": "object"},
                        "body": {}, "count": {"type": "integer", "minimum": 0},
                        "at_least": {"type": "integer", "minimum": 0}}}
_STATUS: dict[str, Any] = {"enum": [str(status) for status in RunStatus if status in ENDED
                                    or status == RunStatus.WAITING]}
# A scenario's faults: every kind but a lost answer (a mock's `lose_response` helper, under
# `call`, sets that up).
_FAULTS = [str(kind) for kind in FaultKind if kind != FaultKind.LOST_RESPONSE]
_STEPS: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_ERRORS = _STEPS
_REGISTRY_PLUGIN = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}  # a plugin's name
SCENARIO_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "oneOf": [{"required": ["event"]}, {"required": ["event_file"]}],
    "required": ["expect"],
    "properties": {
        "name": {"type": "string", "minLength": 1}, "description": {"type": "string"},
        "event": {"type": ["object", "array"]}, "event_file": {"type": "string"},
        "playbook": {"type": "string"},
        "playbooks": {"type": "array", "items": {"type": "string"}},
        "policy": {"type": ["object", "string"]}, "vars": {"type": "object"},
        "backoff_scale": {"type": "number", "minimum": 0, "maximum": 1},
        "fingerprints": {"oneOf": [_REGISTRY_PLUGIN, {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["model", "version", "sha256"],
            "properties": {"registry": {"type": "string"}, "model": {"type": "string"},
                           "version": {"type": ["string", "integer"]},
                           "sensitivity": {"type": "string"}, "path": {"type": "string"},
                           "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}]},
        "mocks": {"type": "object", "additionalProperties": {"type": "object"}},
        "connections": {"type": "object", "additionalProperties": {"type": "object"}},
        "faults": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["mock", "kind"],
            "properties": {"mock": {"type": "string"},
                           "kind": {"enum": _FAULTS},
                           "path": {"type": "string"}, "method": {"type": "string"},
                           "times": {"type": ["integer", "null"], "minimum": 1},
                           "status": {"type": "integer"},
                           "retry_after": {"type": ["number", "string"]},
                           "seconds": {"type": "number", "minimum": 0}, "body": {}}}},
        "resume": {"type": "object", "additionalProperties": False, "properties": {
            "answers": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["decision"],
                "properties": {"decision": {"enum": [str(d) for d in ApprovalDecision]}}}},
            "expire": {"type": "boolean"}}},
        "expect": {"type": "object", "additionalProperties": False, "properties": {
            "detection": {"type": "object"}, "playbooks": {"type": "array",
                                                           "items": {"type": "string"}},
            "risk": {"type": "object", "additionalProperties": False, "properties": {
                "level": {"type": "string"}, "score_at_least": {"type": "number"},
                "score_at_most": {"type": "number"},
                "indicators": {"type": "array", "items": {"type": "string"}},
                "not_indicators": {"type": "array", "items": {"type": "string"}}}},
            "status": _STATUS, "steps": _STEPS, "outputs": {"type": "object"},
            "errors": _ERRORS,
            "runs": {"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": False,
                "properties": {"status": _STATUS, "steps": _STEPS,
                               "outputs": {"type": "object"}, "errors": _ERRORS}}},
            "calls": {"type": "array", "items": _CALL},
            "no_calls": {"type": "array", "items": _CALL}}},
    },
}


@dataclass
class Scenario:
    name: str
    path: Path
    data: dict[str, Any]

    @property
    def base(self) -> Path:
        return self.path.parent

    def event_payload(self) -> Any:
        if "event" in self.data:
            return self.data["event"]
        return load_file(self.base / self.data["event_file"]).data


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario file (SpecError with file:line on any problem)."""
    doc = load_file(path)
    problems = [_problem(doc, error) for error in schema_errors(SCENARIO_SCHEMA, doc.data)] \
        if isinstance(doc.data, dict) else [Problem(doc.file, 1, "a scenario is a mapping")]
    if problems:
        raise SpecError(problems)
    name = doc.data.get("name") or Path(path).name.split(".scenario.")[0]
    return Scenario(name, Path(path), doc.data)


def _problem(doc: Document, error: Any) -> Problem:
    pointer = "/" + "/".join(str(p) for p in error.absolute_path)
    return doc.problem(pointer if pointer != "/" else "", describe_schema_error(error),
                       "scenario")


def collect_scenario_files(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.name.endswith(SCENARIO_SUFFIXES))
        elif path.exists():
            found.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or directory")
    return found


@dataclass
class ScenarioResult:
    """What running one scenario gave; `verdicts` are what triage made of its event (the
    triage wing's Verdicts)."""

    scenario: Scenario
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    verdicts: list[Any] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, RecordedCall]] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.error is None

    def explain(self, every: bool = False) -> str:
        if self.error is not None:
            return self.error
        shown = self.mismatches if every else self.mismatches[:1]
        more = len(self.mismatches) - len(shown)
        return "; ".join(shown) + (f" (and {more} more)" if more else "")
