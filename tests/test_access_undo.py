"""`crownguard undo RUN` of the model-access-request run that decided a request takes the
request's grant back early, as `crownguard access revoke` does (engine/service/access_undo.py),
against the mlflow mock's auth app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crownguard.engine.cli import main
from crownguard.engine.journal import open_journal
from crownguard.engine.service.access_store import AccessStore
from crownguard.plugins.mlflow.mock import MlflowMock

WHY = "retraining the fraud model on the Q3 data"
ALICE = "alice@corp.example"


@pytest.fixture
def mlflow(mock_server: Any) -> MlflowMock:
    mock = mock_server(MlflowMock, auth="basic")
    assert isinstance(mock, MlflowMock)
    mock.default_permission = "NO_PERMISSIONS"
    for model, tags in (("fraud", {"sensitivity": "internal"}), ("public", {}),
                        ("secret", {"sensitivity": "restricted", "owner": "omar@corp.example"})):
        mock.add_version(model, {"weights.bin": b"w"})
        mock.tag_model(model, tags)
    mock.add_user(ALICE, "alice-pw")
    return mock


@pytest.fixture
def files(tmp_path: Path, mlflow: MlflowMock) -> list[str]:
    config, policy = tmp_path / "connections.yaml", tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump({"connections": {"mlflow": mlflow.connection_settings()}}))
    policy.write_text(yaml.safe_dump({"weights": {"off_hours": 0},
                                      "access": {"models": {"tag": "sensitivity"},
                                                 "auto_grant_below": 15}}))
    return ["--config", str(config), "--policy", str(policy),
            "--journal", str(tmp_path / "j.sqlite")]


def ask(files: list[str], model: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["access", "request", model, "--why", WHY, "--hours", "2", "--as", ALICE,
                 "--json", *files]) == 0
    made: dict[str, Any] = json.loads(capsys.readouterr().out)
    return made


def undo(files: list[str], run_id: str, *extra: str) -> list[str]:
    # `undo` takes --config and --journal, not --policy.
    return ["undo", run_id, "--by", "ops@corp.example", *extra, *files[:2], *files[4:]]


def stored(tmp_path: Path, request_id: str) -> Any:
    store = AccessStore(open_journal(str(tmp_path / "j.sqlite")))
    try:
        return store.get(request_id), [h["type"] for h in store.history(request_id)]
    finally:
        store.close()


def test_undo_of_the_run_that_granted_revokes_the_grant_once(
        files: list[str], mlflow: MlflowMock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "fraud", capsys)
    run_id = made["decision"]["run_id"]
    assert made["state"] == "granted" and run_id
    assert mlflow.grants == {(ALICE, "fraud"): "READ"}

    assert main(undo(files, run_id, "--dry-run")) == 0
    assert "would revoke its grant" in capsys.readouterr().out
    assert mlflow.grants == {(ALICE, "fraud"): "READ"}  # a dry run changes nothing

    assert main(undo(files, run_id)) == 0
    out = capsys.readouterr().out
    assert f"access request {made['id']}: read access to fraud for {ALICE}" in out
    assert "revoked by ops@corp.example" in out
    assert mlflow.grants == {}
    request, history = stored(tmp_path, made["id"])
    assert (request.state, request.revoked_by) == ("revoked", "ops@corp.example")
    assert history[-1] == "access_revoked"

    assert main(undo(files, run_id)) != 0  # again: harmless, and it says so
    err = capsys.readouterr().err
    assert "nothing to undo" in err and "is revoked already (by ops@corp.example" in err
    assert "Traceback" not in err
    assert stored(tmp_path, made["id"])[1] == history


def test_undo_leaves_a_permission_the_user_had_before(
        files: list[str], mlflow: MlflowMock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    mlflow.grants[(ALICE, "fraud")] = "EDIT"
    made = ask(files, "fraud", capsys)
    assert made["state"] == "granted"
    assert main(undo(files, made["decision"]["run_id"])) == 0
    assert "the permission the user had before is kept" in capsys.readouterr().out
    assert mlflow.grants == {(ALICE, "fraud"): "EDIT"}
    assert stored(tmp_path, made["id"])[0].state == "revoked"


def test_undo_of_a_denied_requests_run_changes_nothing(
        files: list[str], mlflow: MlflowMock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "public", capsys)  # no model the policy manages: not needed, denied
    assert made["state"] == "denied"
    before = stored(tmp_path, made["id"])
    assert main(undo(files, made["decision"]["run_id"])) != 0
    err = capsys.readouterr().err
    assert f"access request {made['id']} was denied: nothing was granted" in err
    assert stored(tmp_path, made["id"]) == before
    assert mlflow.grants == {}


def test_undo_of_another_run_does_not_touch_access_requests(
        files: list[str], mlflow: MlflowMock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "fraud", capsys)
    assert main(undo(files, "0" * 32)) != 0
    assert "0000000" in capsys.readouterr().err
    assert stored(tmp_path, made["id"])[0].state == "granted"
    assert mlflow.grants == {(ALICE, "fraud"): "READ"}


def test_undo_of_a_pending_requests_run_withdraws_it(
        files: list[str], mlflow: MlflowMock, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    made = ask(files, "secret", capsys)
    assert made["state"] == "pending", made["decision"]
    assert main(undo(files, made["decision"]["run_id"])) == 0
    assert "withdrawn by ops@corp.example (it was pending)" in capsys.readouterr().out
    request, history = stored(tmp_path, made["id"])
    assert request.state == "revoked" and history[-1] == "access_revoked"
    assert mlflow.grants == {}
