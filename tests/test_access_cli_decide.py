"""`crownguard access approve|deny ID --by NAME`: the approver check of the API, from the CLI."""

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
    mock.tag_model("fraud", {"sensitivity": "restricted", "owner": "Omar@corp.example"})
    for user in ("alice@corp.example", "dana@corp.example"):
        mock.add_user(user, "pw")
    return mock


@pytest.fixture
def files(tmp_path: Path, mlflow: MlflowMock) -> list[str]:
    config, policy = tmp_path / "connections.yaml", tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump({"connections": {"mlflow": mlflow.connection_settings()}}))
    policy.write_text(yaml.safe_dump({"weights": {"off_hours": 0}, "access": {
        "auto_grant_below": 5, "people": {"dana@corp.example": {"departing": True}}}}))
    return ["--config", str(config), "--policy", str(policy),
            "--journal", str(tmp_path / "j.sqlite"), "--json"]


def ask(files: list[str], who: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["access", "request", "fraud", "--why", WHY, "--as", who, *files]) == 0
    made: dict[str, Any] = json.loads(capsys.readouterr().out)
    return made


def test_the_owner_approves_and_the_grant_is_made(files: list[str], mlflow: MlflowMock,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "alice@corp.example", capsys)
    assert made["state"] == "pending"
    # Not an approver of this model: refused, said, nothing granted.
    assert main(["access", "approve", made["id"], "--by", "eve@corp.example", *files]) == 2
    assert "eve@corp.example is not an approver" in capsys.readouterr().err
    assert main(["access", "approve", made["id"][:8], "--by", "omar@corp.example",
                 "--comment", "Q3 retrain", *files]) == 0  # the owner, in another case
    approved = json.loads(capsys.readouterr().out)
    assert (approved["state"], approved["decided_by"]) == ("granted", "omar@corp.example")
    assert mlflow.grants == {("alice@corp.example", "fraud"): "READ"}


def test_the_owner_denies(files: list[str], mlflow: MlflowMock,
                          capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "alice@corp.example", capsys)
    assert main(["access", "deny", made["id"], "--by", "omar@corp.example",
                 "--comment", "use the anonymised copy", *files]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "denied"
    assert mlflow.grants == {}
    assert main(["access", "deny", made["id"], "--by", "omar@corp.example", *files]) == 2
    assert "is no longer pending: it cannot be denied" in capsys.readouterr().err


def test_a_denied_leaver_needs_override(files: list[str], mlflow: MlflowMock,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "dana@corp.example", capsys)
    assert made["state"] == "denied"
    assert main(["access", "approve", made["id"], "--by", "omar@corp.example", *files]) == 2
    assert "only an admin can override" in capsys.readouterr().err
    assert main(["access", "approve", made["id"], "--by", "ciso@corp.example", "--override",
                 "--comment", "handover to the successor", *files]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "granted"
    assert mlflow.grants == {("dana@corp.example", "fraud"): "READ"}
