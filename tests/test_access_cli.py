"""`crownguard access request|list|show|revoke` against the mlflow mock's auth app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crownguard.engine.cli import main
from crownguard.plugins.mlflow.mock import MlflowMock

WHY = "retraining the fraud model on the Q3 data"


@pytest.fixture
def mlflow(mock_server: Any) -> MlflowMock:
    mock = mock_server(MlflowMock, auth="basic")
    assert isinstance(mock, MlflowMock)
    mock.default_permission = "NO_PERMISSIONS"
    mock.add_version("fraud", {"weights.bin": b"w"})
    mock.tag_model("fraud", {"sensitivity": "internal"})
    mock.add_user("alice@corp.example", "alice-pw")
    return mock


@pytest.fixture
def files(tmp_path: Path, mlflow: MlflowMock) -> list[str]:
    config, policy = tmp_path / "connections.yaml", tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump({"connections": {"mlflow": mlflow.connection_settings()}}))
    policy.write_text(yaml.safe_dump({"weights": {"off_hours": 0},
                                      "access": {"auto_grant_below": 15}}))
    return ["--config", str(config), "--policy", str(policy),
            "--journal", str(tmp_path / "j.sqlite")]


def test_request_list_show_revoke(files: list[str], mlflow: MlflowMock, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    journal = ["--journal", str(tmp_path / "j.sqlite")]
    assert main(["access", "request", "fraud", "--why", WHY, "--hours", "2",
                 "--as", "alice@corp.example", "--json", *files]) == 0
    made = json.loads(capsys.readouterr().out)
    assert (made["state"], made["duration_seconds"]) == ("granted", 7200)
    assert mlflow.grants == {("alice@corp.example", "fraud"): "READ"}

    assert main(["access", "list", "--state", "granted", *journal]) == 0
    listed = capsys.readouterr().out
    assert f"{made['id']}  granted  alice@corp.example -> fraud (read, 120 min)" in listed
    assert main(["access", "show", made["id"][:8], *journal]) == 0
    shown = capsys.readouterr().out
    assert "access_requested by alice@corp.example" in shown and "access_granted" in shown

    assert main(["access", "revoke", made["id"], "--by", "ops", "--reason", "done",
                 *files]) == 0
    assert "revoked" in capsys.readouterr().out
    assert mlflow.grants == {}


def test_bad_requests_are_refused_with_a_message(files: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["access", "request", "fraud", "--why", "because", *files]) != 0
    err = capsys.readouterr().err
    assert "justification: say why in at least 20 characters" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["access", "request", "fraud", "--why", WHY, "--hours", "lots", *files])
    assert "a number of hours, not 'lots'" in capsys.readouterr().err
    assert main(["access", "show", "nope", *files[-2:]]) != 0
    assert "no access request 'nope'" in capsys.readouterr().err
