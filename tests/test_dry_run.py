"""Dry runs of playbooks whose side-effecting steps feed other steps: the dependants are shown
(`would call ...`, inputs depending on steps not run) and count as successes, while inputs that
are wrong on their own still fail. With core actions, and with the shipped cloud/gen-AI
playbook through `crownguard respond --dry-run` against the mock vendors and the Runner API."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import app as cli
from crownguard.engine.cli.timeline import Timeline
from crownguard.engine.plugins import PluginHost
from crownguard.engine.runner import Runner
from crownguard.engine.scenarios import MockFleet, seed
from crownguard.engine.spec import load_playbook, parse_playbook

ROOT = Path(__file__).resolve().parents[1]
CLOUD = ROOT / "plugins" / "incydr" / "samples" / "model-to-personal-cloud.json"
CLOUD_PLAYBOOK = ROOT / "playbooks" / "model-to-personal-cloud-or-genai.yaml"

CHAIN = """
name: dry-chain
steps:
  - id: create
    action: core.http_request
    with: {method: POST, url: "https://hooks.example.com/tickets", json: {title: "x"}}
  - id: comment
    action: core.http_request
    needs: [create]
    with:
      method: POST
      url: "https://hooks.example.com/tickets/${{ steps.create.output.body.id }}/comments"
      json: {text: "${{ event.text }}", ticket: "${{ steps.create.output.body.id }}"}
      timeout: "${{ steps.create.output.body.timeout }}"
  - id: shape
    action: core.transform
    needs: [create]
    with: {expression: "${{ lower(steps.create.output.body.kind) }}", data: {}}
  - id: after_shape
    action: core.noop
    needs: [shape]
    with: {result: "${{ steps.shape.output.result }}"}
  - id: fan
    action: core.http_request
    needs: [create]
    for_each: "${{ steps.create.output.body.links }}"
    with: {method: POST, url: "https://hooks.example.com/links/${{ item }}"}
  - id: local
    action: core.transform
    with: {expression: "a", data: {a: "${{ event.text }}"}}
  - id: status_only
    action: core.noop
    needs: [create, local]
    with: {status: "${{ steps.create.status }}", local: "${{ steps.local.output.result }}"}
"""


@pytest.fixture
def core_host() -> PluginHost:
    host = PluginHost()
    host.add("crownguard.plugins.core", "core")
    return host


def dry_run(host: PluginHost, text: str, event: dict[str, Any]
            ) -> tuple[dict[str, Any], str]:
    timeline = io.StringIO()
    record = Runner(host, dry_run=True, on_event=Timeline(timeline)).run(
        parse_playbook(text, host.actions), event)
    return record, timeline.getvalue()


def test_dependants_of_steps_not_run_are_shown_not_failed(core_host: PluginHost) -> None:
    record, timeline = dry_run(core_host, CHAIN, {"text": "hello"})
    steps = record["steps"]
    assert record["status"] == "succeeded", steps
    assert all(s["status"] == "succeeded" for s in steps.values())
    assert steps["create"]["output"] == {"dry_run": True, "would_call": "core.http_request",
                                         "inputs": {"method": "POST", "json": {"title": "x"},
                                                    "url": "https://hooks.example.com/tickets"}}
    # A side-effecting dependant: its unknown parts are null (the timeout would fail the schema)
    comment = steps["comment"]["output"]
    assert comment["depends_on_not_run"] == ["create"]
    assert comment["inputs"]["timeout"] is None
    assert comment["inputs"]["json"] == {"text": "hello", "ticket": None}
    assert ("would call core.http_request (inputs depend on steps not run in a dry run: "
            "create)") in timeline
    # A read-only dependant is not called either (its input could not even render) ...
    assert steps["shape"]["output"]["would_call"] == "core.transform"
    assert steps["shape"]["output"]["inputs"]["expression"] is None
    # ... and what reads its output in turn is shown too.
    assert steps["after_shape"]["output"]["depends_on_not_run"] == ["shape"]
    # A for_each over a list the dry run does not know: shown once.
    assert steps["fan"]["output"]["depends_on_not_run"] == ["create"]
    assert steps["fan"]["output"]["for_each"] == "${{ steps.create.output.body.links }}"
    assert "for each item of" in timeline
    # Read-only steps that depend on nothing unknown run for real; a step's status is known.
    assert steps["local"]["output"] == {"result": "hello"}
    assert steps["status_only"]["output"] == {"status": "succeeded", "local": "hello"}


def test_inputs_wrong_on_their_own_still_fail(core_host: PluginHost) -> None:
    bad = CHAIN.replace("      method: POST\n      url: \"https://hooks.example.com/tickets/",
                        "      method: \"${{ event.method }}\"\n"
                        "      url: \"https://hooks.example.com/tickets/")
    record, _ = dry_run(core_host, bad, {"text": "hello", "method": "FETCH"})
    comment = record["steps"]["comment"]
    assert record["status"] == "failed"
    assert comment["status"] == "failed"
    assert comment["error"].startswith("core.http_request: input does not match its schema: "
                                       "'method': 'FETCH' is not one of")
    assert "timeout" not in comment["error"]  # the unknown part is not held against it
    # An input without any unknown part fails exactly as in a real run.
    plain = """
name: plain
steps:
  - id: post
    action: core.http_request
    with: {url: "https://hooks.example.com/x", timeout: "${{ event.timeout }}"}
"""
    record, _ = dry_run(core_host, plain, {"timeout": "soon"})
    assert record["status"] == "failed"
    assert "'timeout': 'soon' is not of type 'number'" in record["steps"]["post"]["error"]


def test_a_real_run_is_unchanged(core_host: PluginHost) -> None:
    text = """
name: real
steps:
  - {id: a, action: core.noop, with: {x: 1}}
  - {id: b, action: core.transform, needs: [a], with: {expression: "x", data: "${{ steps.a.output }}"}}
"""
    record = Runner(core_host).run(parse_playbook(text, core_host.actions), {})
    assert record["steps"]["b"]["output"] == {"result": 1}


# --- the shipped cloud/gen-AI playbook ---------------------------------------------------------


def test_respond_dry_run_of_the_cloud_playbook_succeeds_and_calls_nothing(
        fleet: MockFleet, tmp_path: Path, capsys: Any) -> None:
    fleet.reset()
    seed(fleet, {"slack": {"users": [{"email": "priya.raman@example.com",
                                      "name": "Priya Raman"}]}})
    config = tmp_path / "connections.yaml"
    config.write_text(json.dumps({"connections": fleet.connections()}))
    journal = tmp_path / "journal.sqlite"
    code = cli.main(["respond", str(CLOUD), "--dry-run", "--config", str(config), "--journal",
                     str(journal)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert ("record_answer  would call jira.add_comment (inputs depend on steps not run in a "
            "dry run: await_answer, ticket)") in out
    assert "dry run: if await_answer is approved, the run goes on:" in out
    assert "after this answer the run would end succeeded" in out
    assert "Traceback" not in out + err
    assert fleet.get("jira").calls_to("POST") == []
    assert fleet.get("slack").calls_to("POST", "/api/chat.postMessage") == []
    assert not journal.exists()


def test_runner_dry_run_of_the_cloud_playbook(tmp_path: Path) -> None:
    host = PluginHost.from_entry_points()
    playbook = load_playbook(CLOUD_PLAYBOOK, host.actions)
    event = {"id": "e-1", "time": "2026-11-21T09:12:44Z",
             "actor": {"email": "priya.raman@example.com", "name": "Priya Raman"},
             "file": {"name": "assist-7b.gguf", "is_model": True, "detected_format": "gguf"},
             "destination": {"kind": "genai_tool", "domain": "chat.example.ai"}}
    risk = {"score": 47, "level": "medium",
            "reasons": [{"indicator": "model_file", "detail": "gguf model file"}]}
    record = Runner(host, dry_run=True).run(playbook, event, risk=risk)
    steps = record["steps"]
    assert record["status"] == "succeeded", steps
    # The run would wait for the answer: what follows is planned per answer.
    assert steps["await_answer"]["status"] == "waiting"
    assert steps["ticket"]["output"]["would_call"] == "jira.create_issue"
    assert {steps[s]["status"] for s in ("nudge_failed", "ticket_failed")} == {"skipped"}
    approve, reject, expire = record["branches"]
    assert [b["answer"] for b in record["branches"]] == ["approve", "reject", "expire"]
    answer = approve["steps"]["record_answer"]["output"]
    assert answer["would_call"] == "jira.add_comment"
    assert answer["depends_on_not_run"] == ["await_answer", "ticket"]
    assert answer["inputs"]["issue"] is None
    assert {approve["steps"][s]["status"] for s in ("escalate", "escalate_ticket")} == \
        {"skipped"}
    for branch in (reject, expire):
        assert branch["status"] == "succeeded"  # the failed wait is handled by escalate
        assert branch["steps"]["await_answer"]["status"] == "failed"
        assert branch["steps"]["record_answer"]["status"] == "skipped"
        assert branch["steps"]["escalate"]["output"]["would_call"] == "slack.post_message"
    assert expire["steps"]["await_answer"]["error"].startswith("no answer before ")
