"""Issue 5's loop end to end: nudge by Slack, wait, the employee clicks, the answer is verified,
recorded in the journal and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from crownguard.engine.cli import main
from crownguard.engine.journal import SQLiteJournal
from crownguard.plugins.slack.mock import SlackMock
from crownguard.plugins.slack.mock.base import ALL_SCOPES

PLAYBOOK = """
name: nudge-and-wait
steps:
  - id: nudge
    action: slack.send_nudge
    with:
      email: "${{ event.actor.email }}"
      file_name: "${{ event.file.name }}"
      policy: "Models stay on company systems"
      reply_step: answer
  - id: answer
    action: core.wait_for_approval
    needs: [nudge]
    with:
      prompt: "Why did ${{ event.file.name }} leave?"
      approvers: ["${{ steps.nudge.output.user_id }}"]
      timeout_seconds: 86400
  - id: close
    action: core.noop
    needs: [answer]
    with: {reason: "${{ steps.answer.output.comment }}"}
  - id: escalate
    action: core.noop
    needs: [answer]
    when: failure
"""


def waiting_click(tmp_path: Path, slack: SlackMock, capsys: Any) -> tuple[str, list[str],
                                                                       dict[str, str]]:
    """Run PLAYBOOK until it waits; Priya's id, the slack-answer arguments for her click, and
    its headers."""
    user_id = slack.add_user("priya@example.com", "Priya")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"connections": {"slack": slack.connection_settings()}}))
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "e.json").write_text(json.dumps(
        {"actor": {"email": "priya@example.com"}, "file": {"name": "llama-ft.gguf"}}))
    journal = str(tmp_path / "j.sqlite")
    assert main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--config", str(config), "--journal", journal, "--json"]) == 3
    record = json.loads(capsys.readouterr().out)
    nudge = record["steps"]["nudge"]["output"]
    body, headers = slack.click(nudge["channel"], nudge["ts"], "business_reason", user_id,
                                justification="benchmarking for the Q4 report")
    (tmp_path / "body.txt").write_text(body)
    args = ["slack-answer", "--body-file", str(tmp_path / "body.txt"), "--config", str(config),
            "--journal", journal, "--json"]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    return user_id, args, headers


def test_slack_click_answers_the_wait(tmp_path: Path, mock_server: Any, capsys: Any) -> None:
    slack = mock_server(SlackMock)
    user_id, args, headers = waiting_click(tmp_path, slack, capsys)
    journal = args[args.index("--journal") + 1]
    # A forged signature is refused before anything is recorded.
    forged = [a.replace(headers["X-Slack-Signature"], "v0=" + "0" * 64) for a in args]
    assert main(forged) == 2
    assert "signature" in capsys.readouterr().err.lower()
    assert main(args) == 0
    done = json.loads(capsys.readouterr().out)
    # The approvers name the Slack id; the answer is by the e-mail, the id its alias.
    assert done["steps"]["answer"]["output"]["by"] == "priya@example.com"
    with SQLiteJournal(journal) as j:
        [approval] = j.approvals(done["run_id"])
    assert approval.accepted and approval.reason == f"also known as {user_id}"
    assert done["steps"]["close"]["output"]["reason"] == \
        "business_reason: benchmarking for the Q4 report"
    assert done["steps"]["escalate"]["status"] == "skipped"


def test_approvers_by_slack_id_accept_the_id_when_the_email_is_hidden(
        tmp_path: Path, mock_server: Any, capsys: Any) -> None:
    slack = mock_server(SlackMock)
    user_id, args, _ = waiting_click(tmp_path, slack, capsys)
    slack.set_scopes(ALL_SCOPES - {"users:read.email"})
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["steps"]["answer"]["output"]["by"] == user_id
    assert f"answering as Slack user {user_id} alone: Slack gave no e-mail" in err
