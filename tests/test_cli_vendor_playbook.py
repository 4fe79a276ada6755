"""Issue 3's end-to-end check: contain a host and suspend a user in parallel through the CLI,
against the vendor mocks, then undo both (a false positive)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from crownguard.engine.cli import main
from crownguard.plugins.falcon.mock import FalconMock
from crownguard.plugins.okta.mock import OktaMock

PLAYBOOK = """
name: contain-and-suspend
steps:
  - id: contain
    action: falcon.contain_host
    with: {hostname: "${{ event.device.hostname }}"}
  - id: suspend
    action: okta.suspend_user
    with: {user: "${{ event.actor.email }}"}
  - id: sessions
    action: okta.clear_sessions
    needs: [suspend]
    with: {user: "${{ event.actor.email }}"}
"""


def test_contain_and_suspend_in_parallel_then_undo(tmp_path: Path, mock_server: Any,
                                                   capsys: Any) -> None:
    falcon = mock_server(FalconMock)
    okta = mock_server(OktaMock)
    okta.add_user("dana@example.com")
    falcon.inject("status", status=429, retry_after=0.05,
                  path="/devices/entities/devices-actions/v2")  # retried, honouring it
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"connections": {"falcon": falcon.connection_settings(),
                                                      "okta": okta.connection_settings()}}))
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    (tmp_path / "e.json").write_text(json.dumps(
        {"actor": {"email": "dana@example.com"}, "device": {"hostname": "WS-ALICE-01"}}))
    journal = tmp_path / "j.sqlite"
    code = main(["run", str(tmp_path / "pb.yaml"), "--event", str(tmp_path / "e.json"),
                 "--config", str(config), "--journal", str(journal), "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record
    assert record["steps"]["contain"]["output"]["changed"] is True
    assert record["steps"]["contain"]["attempts"] == 2
    device = record["steps"]["contain"]["output"]["device_id"]
    assert falcon.hosts[device].status == "contained"
    assert okta.status_of("dana@example.com") == "SUSPENDED"
    # contain and suspend were both started before either finished: no need between them.
    events = json.loads(_runs_show(record["run_id"], journal, capsys))
    assert events["steps"]["contain"]["started_at"] < events["steps"]["suspend"]["finished_at"]
    assert events["steps"]["suspend"]["started_at"] < events["steps"]["contain"]["finished_at"]

    code = main(["undo", record["run_id"], "--config", str(config), "--journal", str(journal),
                 "--json"])
    undo = json.loads(capsys.readouterr().out)
    assert code == 0, undo
    assert set(undo["steps"]) == {"undo_contain", "undo_suspend"}  # sessions has no undo
    assert falcon.hosts[device].status == "normal"
    assert okta.status_of("dana@example.com") == "ACTIVE"


def _runs_show(run_id: str, journal: Path, capsys: Any) -> str:
    main(["runs", "show", run_id, "--journal", str(journal), "--json"])
    return str(capsys.readouterr().out)
