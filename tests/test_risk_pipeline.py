"""End to end: a raw Incydr event, its file's bytes and the registry index, through
normalise -> detect -> score, into a playbook run whose steps read `event` and `risk`."""

from __future__ import annotations

import gc
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_detection_files import csv_bytes, safetensors_file
from test_events import incydr_event

from crownguard.engine.expressions import evaluate
from crownguard.engine.triage.detection import detect
from crownguard.engine.triage.detection.fingerprints import FingerprintIndex, ModelVersionRef
from crownguard.engine.triage.events import normalise
from crownguard.engine.triage.risk import InMemoryHistory, load_policy, score
from crownguard.plugins.incydr.source import EVENT_SOURCE

PLAYBOOK = """
name: exfil-check
trigger:
  if: "risk.score >= `70` && event.file.is_model"
steps:
  - id: contain
    action: core.noop
    if: "event.actor.departing && risk.level == 'critical'"
    with:
      device: "${{ event.device.incydr_id }}"
      model: "${{ event.file.detected_format }}"
  - id: nudge
    action: core.noop
    if: "!(event.actor.departing)"
    with: {user: "${{ event.actor.email }}"}
  - id: ticket
    action: core.noop
    needs: [contain]
    with:
      summary: "${{ join('; ', risk.reasons[].detail) }}"
"""


def triage(raw: dict[str, Any], content: Path | bytes, index: FingerprintIndex,
           history: InMemoryHistory) -> tuple[dict[str, Any], dict[str, Any]]:
    policy = load_policy()
    event = normalise(raw, options=policy.options, sources=[EVENT_SOURCE])
    detection = detect(event, content=content, index=index)
    risk = score(event, detection, policy, history)
    history.record(event, detection, risk, violation_level=policy.violation_level)
    return event.with_detection(detection).to_dict(), risk.to_dict()


def test_a_departing_engineer_moving_fraud_model_v7_runs_containment(
        tmp_path: Path, isolated_host: Callable[..., Any],
        run_playbook: Callable[..., dict[str, Any]]) -> None:
    weights = safetensors_file(tmp_path / "model.safetensors")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    copied = tmp_path / "holiday.jpg"
    copied.write_bytes(weights.read_bytes())
    with FingerprintIndex(tmp_path / "fp.sqlite") as index:
        index.refresh([ModelVersionRef("mlflow", "fraud-model", "7", "restricted", "1")],
                      lambda ref: {"files": [{"path": "model/model.safetensors",
                                              "size": weights.stat().st_size,
                                              "sha256": digest}]})
        raw = incydr_event(file={"name": "holiday.jpg", "hash": {"sha256": digest},
                                 "sizeInBytes": copied.stat().st_size})
        event, risk = triage(raw, copied, index, InMemoryHistory())

    assert event["file"]["is_model"] and event["file"]["detected_format"] == "safetensors"
    assert risk["level"] == "critical"
    for indicator in ("registered_model", "model_sensitivity", "departing_employee",
                      "disguised_file", "untrusted_destination"):
        assert indicator in risk["indicators"]
    assert evaluate("risk.score >= `70` && event.file.is_model", {"event": event, "risk": risk})

    host = isolated_host()
    record = run_playbook(PLAYBOOK, event, host=host, risk=risk)
    steps = record["steps"]
    assert record["status"] == "succeeded"
    assert steps["contain"]["status"] == "succeeded"
    assert steps["contain"]["output"] == {"device": "24681", "model": "safetensors"}
    assert steps["nudge"]["status"] == "skipped"
    assert "fraud-model v7" in steps["ticket"]["output"]["summary"]


def test_a_csv_export_does_not_trigger(tmp_path: Path) -> None:
    with FingerprintIndex() as index:
        raw = incydr_event(file={"name": "customers.csv", "hash": {"sha256": "ab" * 32}},
                           event={"action": "sync-app-created"},
                           destination={"removableMedia": None, "name": "Dropbox",
                                        "accountType": "PERSONAL"})
        event, risk = triage(raw, csv_bytes(), index, InMemoryHistory())
    assert event["file"]["is_model"] is False
    assert risk["score"] <= 20 and "not_a_model" in risk["indicators"]
    assert not evaluate("risk.score >= `70` && event.file.is_model",
                        {"event": event, "risk": risk})


def test_the_benchmark_runs(capsys: Any) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        import bench_triage
    finally:
        sys.path.pop(0)
    assert bench_triage.main(["--events", "300", "--registered", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    stages = {row["stage"]: row for row in report["results"]}
    assert "normalise + detect + score + route (4 shipped playbooks)" in stages
    assert "route (4 triggers evaluated per event)" in stages
    assert report["mix"]["playbooks started"] > 0
    assert gc.get_freeze_count() == 0  # the benchmark's own freeze is undone


@pytest.mark.parametrize("stage", ["normalise", "detect", "score", "full"])
def test_the_instruction_count_runs_each_stage(stage: str) -> None:
    """What valgrind counts runs (valgrind itself is too slow for the suite)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    try:
        import triage_instructions
    finally:
        sys.path.pop(0)
    assert triage_instructions.main(["--child", stage, "--feed", "100", "--warm", "20",
                                     "--events", "30"]) == 0
    assert gc.get_freeze_count() == 0
