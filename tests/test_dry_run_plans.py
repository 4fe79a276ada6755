"""Dry runs that plan rather than fail: outputs of steps a dry run does not call are unknown,
so a condition reading them is not evaluated (the step is shown with both of its branches),
and a wait (core.wait_for_approval) is not where the dry run stops: it shows what would run
after each answer (approve, reject, expire). With the shipped playbooks and sample events,
through `crownguard run --dry-run`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yaml"))

ACTOR = {"email": "priya.raman@example.com", "name": "Priya Raman"}
FILE = {"name": "assist-7b.gguf", "path": "C:\\Users\\priya\\assist-7b.gguf", "is_model": True,
        "detected_format": "gguf", "sha256": "ab" * 32}
DEVICE = {"hostname": "lap-017.corp.example.com", "os": "Windows 11"}
# One sample event per shipped playbook, as triage hands it on (normalised).
EVENTS: dict[str, dict[str, Any]] = {
    "departing-employee-model-exfil": {
        "actor": {**ACTOR, "departing": True, "departure_date": "2026-12-15"},
        "file": FILE, "device": DEVICE,
        "source": {"registry": "mlflow", "model": "assist-7b", "version": "3"},
        "destination": {"kind": "personal_cloud", "name": "Dropbox"}},
    "low-risk-model-nudge": {
        "actor": ACTOR, "file": FILE, "device": DEVICE,
        "destination": {"kind": "email", "domain": "partner.example.org"}},
    "model-to-personal-cloud-or-genai": {
        "actor": ACTOR, "file": FILE, "device": DEVICE,
        "destination": {"kind": "genai_tool", "domain": "chat.example.ai"}},
    "model-to-removable-media": {
        "actor": ACTOR, "file": {**FILE, "path": "E:\\assist-7b.gguf"}, "device": DEVICE,
        "destination": {"kind": "removable_media", "name": "SanDisk Ultra"}},
    "model-access-request": {  # an access request, as the access desk hands it on
        "kind": "access_request", "risk_details": "",
        "access_request": {"id": "a1", "requester": ACTOR["email"], "model": "assist-7b",
                           "access": "read", "justification": "evaluation on the Q3 set",
                           "duration_seconds": 28800, "duration_hours": 8},
        "policy": {"managed": True, "approvers": ["omar@example.com"],
                   "approvers_text": "omar@example.com"}},
}


def _dry_run(run_cli: Any, tmp_path: Path, playbook: Path | str,
             event: dict[str, Any]) -> tuple[int, dict[str, Any], int, str]:
    """(exit code, record) of `run --dry-run --json`, (exit code, output) of `run --dry-run`."""
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"id": "e-1", "time": "2026-11-21T09:12:44Z", **event}))
    config = tmp_path / "connections.yaml"
    config.write_text("settings:\n  vars: {}\n")
    if isinstance(playbook, str):
        text, playbook = playbook, tmp_path / "pb.yaml"
        playbook.write_text(text)
    code, out, _ = run_cli("run", playbook, "--event", path, "--config", config, "--dry-run",
                           "--json")
    printed_code, printed, _ = run_cli("run", playbook, "--event", path, "--config", config,
                                       "--dry-run")
    return code, json.loads(out), printed_code, printed


def _all_steps(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    steps = list(record["steps"].items())
    for branch in record.get("branches") or []:
        steps += _all_steps(branch)
    return steps


# The steps each would wait at (the dry run plans every answer there).
WAITS = {"model-to-personal-cloud-or-genai": ["await_answer"]}


def test_every_shipped_playbook_has_a_sample_event() -> None:
    assert sorted(EVENTS) == sorted(p.stem for p in PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.stem)
def test_a_dry_run_of_a_shipped_playbook_plans_every_path_without_failing(
        run_cli: Any, tmp_path: Path, playbook: Path) -> None:
    # The risk comes in through the event's context as triage gives it: `run` takes none,
    # so each playbook's risk-reading templates see null, as they may for real.
    code, record, printed_code, printed = _dry_run(run_cli, tmp_path, playbook,
                                                   EVENTS[playbook.stem])
    assert code == printed_code == 0, printed
    assert record["status"] == "succeeded", printed
    if record.get("branches"):  # the sentence follows the paths, not the wait they began at
        assert record["outcome"].startswith("succeeded: the worst of the dry run"), record
        assert not re.search(r"\nrun [0-9a-f]{32}: waiting", printed), printed
    failed = [(sid, s["error"]) for sid, s in _all_steps(record) if s["status"] == "failed"
              and not (s["error"] or "").startswith(("rejected by", "no answer before"))]
    assert failed == [], failed
    assert "length(null)" not in printed and "expression" not in printed.lower()
    waits = [sid for sid, s in record["steps"].items() if s["status"] == "waiting"]
    assert waits == WAITS.get(playbook.stem, [])
    if not waits:
        assert "branches" not in record
        return
    # A wait: what would run after each answer, in the record and in words.
    assert [(b["after"], b["answer"]) for b in record["branches"]] == [
        (waits[0], "approve"), (waits[0], "reject"), (waits[0], "expire")]
    for branch in record["branches"]:
        assert branch["summary"].startswith(f"if {waits[0]} is ")
        assert f"  {branch['summary']}" in printed
    assert "dry run: the run would wait; after each answer:" in printed
    assert f"⑂ dry run: if {waits[0]} is approved, the run goes on:" in printed
    assert f"⑂ dry run: if {waits[0]} is rejected, the run goes on:" in printed
    assert f"⑂ dry run: if {waits[0]} is not answered in time, the run goes on:" in printed


def test_the_cloud_playbook_shows_each_answer_s_path(run_cli: Any, tmp_path: Path) -> None:
    _, record, _, printed = _dry_run(run_cli, tmp_path,
                                     ROOT / "playbooks" / "model-to-personal-cloud-or-genai.yaml",
                                     EVENTS["model-to-personal-cloud-or-genai"])
    approve, reject, expire = record["branches"]
    assert approve["summary"] == (
        "if await_answer is approved: would run record_answer (jira.add_comment); skipped "
        "escalate, escalate_ticket; the run would end succeeded")
    for branch in (reject, expire):
        assert branch["steps"]["record_answer"]["status"] == "skipped"
        assert "would run escalate (slack.post_message), escalate_ticket (jira.add_comment)" \
            in branch["summary"]
    assert "if await_answer is not answered in time" in expire["summary"]
    assert re.search(r"await_answer +waiting: Justification from priya\.raman@example\.com",
                     printed)
    assert "(dry run: what would run after each answer follows)" in printed


COUNTED = """
name: counted
steps:
  - id: x
    action: core.http_request
    with: {method: POST, url: "https://hooks.example.com/search"}
  - id: many
    action: core.noop
    needs: [x]
    if: "length(steps.x.output.items) > `0`"
    with: {count: "${{ length(steps.x.output.items) }}"}
  - id: none
    action: core.noop
    needs: [x]
    if: "length(steps.x.output.items) == `0`"
  - id: after_many
    action: core.noop
    needs: [many]
    with: {count: "${{ steps.many.output.count }}"}
  - id: known
    action: core.noop
    needs: [x]
    if: "steps.x.status == 'succeeded'"
    with: {ok: true}
"""


def test_a_condition_on_an_unknown_output_shows_both_branches(
        run_cli: Any, tmp_path: Path) -> None:
    code, record, _, printed = _dry_run(run_cli, tmp_path, COUNTED, {})
    steps = record["steps"]
    assert code == 0 and record["status"] == "succeeded", steps
    for sid, op in (("many", ">"), ("none", "==")):
        output = steps[sid]["output"]
        assert steps[sid]["status"] == "succeeded" and steps[sid]["error"] is None
        assert output["would_call"] == "core.noop"  # shown, not called: it may not run
        assert output["if"] == f"length(steps.x.output.items) {op} `0`"
        assert output["if_depends_on_not_run"] == ["x"]
        assert output["otherwise"] == "skipped"
        assert (f"only if length(steps.x.output.items) {op} `0` (depends on steps.x.output, "
                "not known in a dry run), otherwise skipped") in printed
    assert steps["after_many"]["output"]["depends_on_not_run"] == ["many"]
    # A condition on what a dry run knows (a status) is evaluated, and the step runs for real.
    assert steps["known"]["output"] == {"ok": True}
    assert "length(null)" not in printed


TWO_WAITS = """
name: two-waits
steps:
  - id: first
    action: core.wait_for_approval
    with: {prompt: "first?", approvers: [lead@example.com], timeout_seconds: 60}
  - id: second
    action: core.wait_for_approval
    needs: [first]
    with: {prompt: "second?"}
  - id: done
    action: core.noop
    needs: [second]
    with: {by: "${{ steps.second.output.by }}"}
"""


def test_nested_waits_are_planned_and_an_unhandled_answer_fails_the_dry_run(
        run_cli: Any, tmp_path: Path) -> None:
    code, record, printed_code, printed = _dry_run(run_cli, tmp_path, TWO_WAITS, {})
    # Rejecting either wait fails a run that has no `when: failure` step: so does the plan.
    assert record["status"] == "failed" and code == printed_code == 1
    approve, reject, expire = record["branches"]
    assert reject["steps"]["first"]["error"] == (
        "rejected by lead@example.com (in a dry run: who and why are not known)")
    assert reject["status"] == expire["status"] == "failed"
    # After the first is approved the run waits at the second, which has no deadline: approve
    # or reject only.
    assert approve["steps"]["second"]["status"] == "waiting"
    assert [b["answer"] for b in approve["branches"]] == ["approve", "reject"]
    inner_approve = approve["branches"][0]
    assert inner_approve["status"] == "succeeded"
    assert inner_approve["steps"]["done"]["output"]["depends_on_not_run"] == ["second"]
    assert "\n    if second is approved: would run done (core.noop)" in printed


def test_the_answers_paths_are_shown_but_neither_journaled_nor_observed() -> None:
    from crownguard.engine import hookimpl
    from crownguard.engine.plugins import PluginHost
    from crownguard.engine.runner import Runner
    from crownguard.engine.spec import parse_playbook

    class Observer:
        def __init__(self) -> None:
            self.finished: list[str] = []

        @hookimpl
        def crownguard_step_finished(self, run_id: str, step_id: str,
                                     result: dict[str, Any]) -> None:
            self.finished.append(step_id)

    observer = Observer()
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    host.add(observer, "observer")
    journaled: list[dict[str, Any]] = []
    shown: list[dict[str, Any]] = []
    record = Runner(host, dry_run=True, journal=journaled.append, on_event=shown.append).run(
        parse_playbook(TWO_WAITS, host.actions), {})
    assert len(record["branches"]) == 3
    # The journal and the observers see the run up to its first wait, once.
    assert [e["type"] for e in journaled] == ["run_started", "step_started", "step_waiting"]
    assert observer.finished == []
    # The live timeline sees every answer's path, each announced.
    branches = [(e["step"], e["answer"], e["depth"]) for e in shown
                if e["type"] == "dry_run_branch"]
    assert branches == [("first", "approve", 1), ("second", "approve", 2),
                        ("second", "reject", 2), ("first", "reject", 1), ("first", "expire", 1)]
