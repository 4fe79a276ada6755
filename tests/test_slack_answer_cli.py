"""Issue 5's loop end to end: nudge by Slack, wait, the employee clicks, the answer is verified,
recorded in the journal and the run goes on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from crownguard.engine.cli import main
from crownguard.plugins.slack.mock import SlackMock

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


def test_slack_click_answers_the_wait(tmp_path: Path, mock_server: Any, capsys: Any) -> None:
    slack = mock_server(SlackMock)
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
    # A forged signature is refused before anything is recorded.
    forged = [a.replace(headers["X-Slack-Signature"], "v0=" + "0" * 64) for a in args]
    assert main(forged) == 2
    assert "signature" in capsys.readouterr().err.lower()
    assert main(args) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["steps"]["answer"]["output"]["by"] == user_id
    assert done["steps"]["close"]["output"]["reason"] == \
        "business_reason: benchmarking for the Q4 report"
    assert done["steps"]["escalate"]["status"] == "skipped"
