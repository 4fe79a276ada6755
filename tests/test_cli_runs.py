"""The journal commands end to end: run, runs, approve, resume, undo, audit."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crownguard.engine.cli import main
from crownguard.plugins.core.mock import WebhookMock

PLAYBOOK = """
name: approve-then-post
steps:
  - id: notify
    action: core.http_request
    with: {method: POST, url: "${{ vars.base }}/hooks/soc", json: {user: "${{ event.user }}"}}
  - id: ask
    action: core.wait_for_approval
    with: {prompt: "Suspend ${{ event.user }}?", approvers: [alice], timeout_seconds: 3600}
  - id: act
    action: core.http_request
    needs: [ask]
    with: {method: POST, url: "${{ vars.base }}/hooks/act", json: {by: "${{ steps.ask.output.by }}"}}
  - id: escalate
    action: core.http_request
    needs: [ask]
    when: failure
    with: {method: POST, url: "${{ vars.base }}/hooks/escalate", json: {}}
"""


@pytest.fixture
def setup(tmp_path: Path, mock_server: Any) -> dict[str, Any]:
    hooks = mock_server(WebhookMock)
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "event.json").write_text(json.dumps({"user": "dana"}))
    (tmp_path / "c.yaml").write_text(
        f"connections:\n  http: {{allowed_hosts: ['127.0.0.1:{hooks.port}']}}\n"
        f"settings:\n  vars: {{base: '{hooks.base_url}'}}\n")
    return {"dir": tmp_path, "hooks": hooks, "journal": tmp_path / "j.sqlite"}


def cli(capsys: Any, *args: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def start(setup: dict[str, Any], capsys: Any) -> str:
    d = setup["dir"]
    code, out, _ = cli(capsys, "run", d / "pb.yaml", "--event", d / "event.json", "--config",
                       d / "c.yaml", "--journal", setup["journal"], "--json")
    assert code == 3, out  # waiting
    record = json.loads(out)
    assert record["status"] == "waiting"
    return str(record["run_id"])


def test_approve_resumes_and_records(setup: dict[str, Any], capsys: Any) -> None:
    run_id = start(setup, capsys)
    j = setup["journal"]
    code, out, _ = cli(capsys, "runs", "--status", "waiting", "--journal", j)
    assert run_id in out
    code, _, err = cli(capsys, "approve", run_id, "ask", "--decision", "approve", "--by",
                       "mallory", "--config", setup["dir"] / "c.yaml", "--journal", j)
    assert code == 1 and "mallory may not answer (allowed: alice)" in err
    code, out, _ = cli(capsys, "approve", run_id, "ask", "--decision", "approve", "--by",
                       "alice", "--comment", "ok", "--config", setup["dir"] / "c.yaml",
                       "--journal", j, "--json")
    assert code == 0, out
    record = json.loads(out)
    assert record["steps"]["ask"]["output"]["by"] == "alice"
    assert setup["hooks"].received["act"] == [{"by": "alice"}]
    assert len(setup["hooks"].received["soc"]) == 1  # not repeated by the resume
    code, out, _ = cli(capsys, "runs", "show", run_id, "--journal", j, "--json")
    shown = json.loads(out)
    assert [a["accepted"] for a in shown["approvals"]] == [False, True]
    assert shown["status"] == "succeeded"
    code, out, _ = cli(capsys, "runs", "show", run_id, "--journal", j)
    assert "refused: mallory may not answer" in out and "answer to 'ask': approve by alice" in out
    assert "run resumed" in out


def test_reject_takes_the_failure_path(setup: dict[str, Any], capsys: Any) -> None:
    run_id = start(setup, capsys)
    code, out, _ = cli(capsys, "approve", run_id, "ask", "--decision", "reject", "--by",
                       "alice", "--comment", "false positive", "--config",
                       setup["dir"] / "c.yaml", "--journal", setup["journal"], "--json")
    record = json.loads(out)
    assert record["steps"]["ask"]["error"] == "rejected by alice: false positive"
    assert record["steps"]["escalate"]["status"] == "succeeded"
    assert code == 0  # the rejection was handled by the escalate step


def test_approve_errors(setup: dict[str, Any], capsys: Any) -> None:
    run_id = start(setup, capsys)
    j = setup["journal"]
    code, _, err = cli(capsys, "approve", run_id, "notify", "--decision", "approve", "--by",
                       "alice", "--journal", j)
    assert code == 2 and "step 'notify' of run" in err and "is not waiting" in err
    code, _, err = cli(capsys, "approve", "nope", "ask", "--decision", "approve", "--by", "a",
                       "--journal", j)
    assert code == 2 and "nope" in err


def test_undo_audit_and_tamper(setup: dict[str, Any], capsys: Any) -> None:
    run_id = start(setup, capsys)
    j = setup["journal"]
    code, out, _ = cli(capsys, "audit", "verify", "--journal", j)
    assert code == 0 and "journal intact" in out
    code, out, _ = cli(capsys, "audit", "head", "--journal", j)
    anchor = out.strip()
    export = setup["dir"] / "audit.jsonl"
    code, _, err = cli(capsys, "audit", "export", "--format", "jsonl", "--output", export,
                       "--journal", j)
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert code == 0 and lines and all("hash" in entry for entry in lines)
    # Nothing this playbook did declares an undo.
    code, _, err = cli(capsys, "undo", run_id, "--journal", j)
    assert code == 2 and "nothing to undo" in err
    # Edit one stored event behind the journal's back: verify names it.
    with sqlite3.connect(j) as db:
        table = next(name for (name,) in db.execute(
            "select name from sqlite_master where type='table'") if "entr" in name)
        columns = [c[1] for c in db.execute(f"pragma table_info({table})")]
        payload = next(c for c in columns if "payload" in c)
        db.execute(f"update {table} set {payload} = replace({payload}, 'dana', 'eve') "
                   f"where {payload} like '%dana%'")
    code, out, _ = cli(capsys, "audit", "verify", "--journal", j, "--anchor", anchor)
    assert code == 1 and "seq" in out


def test_undo_of_a_waiting_run_with_nothing_to_undo_still_cancels_it(setup: dict[str, Any],
                                                                      capsys: Any) -> None:
    run_id = start(setup, capsys)
    j, c = setup["journal"], setup["dir"] / "c.yaml"
    code, out, err = cli(capsys, "undo", run_id, "--journal", j)
    assert code == 2 and f"run {run_id} is cancelled, but there is nothing to undo" in err
    assert f"cancelling run {run_id} (waiting) first" in out
    code, out, err = cli(capsys, "approve", run_id, "ask", "--decision", "reject", "--by",
                         "alice", "--config", c, "--journal", j)
    assert code == 1 and "was undone and cancelled at" in err and "nothing to approve" in err
    assert "act" not in setup["hooks"].received and "escalate" not in setup["hooks"].received
    code, out, _ = cli(capsys, "runs", "--status", "cancelled", "--journal", j)
    assert run_id in out
    code, out, _ = cli(capsys, "audit", "verify", "--journal", j)
    assert code == 0


def test_resume_all_with_nothing_to_do(setup: dict[str, Any], capsys: Any) -> None:
    code, _, err = cli(capsys, "resume", "--all", "--journal", setup["journal"])
    assert code == 2 and "no journal at" in err  # a mistyped path is not an empty journal
    start(setup, capsys)  # a run waiting with nothing to settle yet
    code, out, _ = cli(capsys, "resume", "--all", "--journal", setup["journal"])
    assert code == 0 and "0 runs resumed" in out
    code, _, err = cli(capsys, "resume", "--journal", setup["journal"])
    assert code == 2 and "give a RUN_ID or --all" in err


def test_approve_finds_the_runs_own_connections_file(setup: dict[str, Any], capsys: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = start(setup, capsys)
    monkeypatch.chdir(setup["dir"].parent)  # elsewhere, and no --config
    code, out, _ = cli(capsys, "approve", run_id, "ask", "--decision", "approve", "--by",
                       "alice", "--journal", setup["journal"], "--json")
    assert code == 0, out
    assert setup["hooks"].received["act"] == [{"by": "alice"}]


def test_bad_output_path_and_journal_typos(setup: dict[str, Any], capsys: Any) -> None:
    start(setup, capsys)
    code, _, err = cli(capsys, "audit", "export", "--output", setup["dir"], "--journal",
                       setup["journal"])
    assert code == 2 and "cannot write" in err and "Traceback" not in err
    code, _, err = cli(capsys, "audit", "verify", "--journal", setup["dir"] / "typo.sqlite")
    assert code == 2 and "no journal at" in err
    assert not (setup["dir"] / "typo.sqlite").exists()
