"""The mlflow plugin's just-in-time access actions against the mock: grant, revoke, tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

import crownguard.plugins.mlflow as mlflow_plugin
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.mlflow.mock import MlflowMock

Run = Callable[..., dict[str, Any]]


@pytest.fixture
def host(isolated_host: Callable[..., PluginHost]) -> PluginHost:
    return isolated_host(mlflow_plugin, name="mlflow")


@pytest.fixture
def start(mock_server: Callable[..., Any]) -> Callable[..., MlflowMock]:
    def make(**kwargs: Any) -> MlflowMock:
        mock = mock_server(MlflowMock, **kwargs)
        assert isinstance(mock, MlflowMock)
        mock.add_version("fraud", {"weights.bin": b"w"})
        mock.tag_model("fraud", {"sensitivity": "restricted", "owner": "omar@corp.example"})
        return mock

    return make


@pytest.fixture
def call(host: PluginHost, mock_config: Callable[..., Any], run_step: Run) -> Run:
    def run(mock: MlflowMock, action: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return run_step(action, inputs, config=mock_config("mlflow", mock, host=host),
                        host=host)

    return run


def reads(mock: MlflowMock, user: str, password: str) -> int:
    """What the user's own read of the model answers (200, or 403 without a permission)."""
    return requests.get(mock.url_for("/api/2.0/mlflow/registered-models/get"),
                        params={"name": "fraud"}, auth=(user, password), timeout=5).status_code


@pytest.mark.parametrize("api", ["v3", "legacy"])
def test_grant_then_revoke_really_changes_what_the_user_may_do(
        start: Callable[..., MlflowMock], call: Run, api: str) -> None:
    mock = start(auth="basic", auth_api=api)
    mock.default_permission = "NO_PERMISSIONS"
    mock.add_user("alice@corp.example", "alice-pw")
    assert reads(mock, "alice@corp.example", "alice-pw") == 403
    granted = call(mock, "mlflow.grant_model_permission",
                   {"name": "fraud", "username": "alice@corp.example"})
    assert granted["status"] == "succeeded", granted["error"]
    assert granted["output"] == {
        "name": "fraud", "username": "alice@corp.example", "permission": "READ", "api": api,
        "is_admin": False, "changed": True, "pre_existing": None}
    assert mock.grants == {("alice@corp.example", "fraud"): "READ"}
    assert reads(mock, "alice@corp.example", "alice-pw") == 200
    again = call(mock, "mlflow.grant_model_permission",
                 {"name": "fraud", "username": "alice@corp.example"})
    assert again["output"]["changed"] is False and again["output"]["pre_existing"] == "READ"

    revoked = call(mock, "mlflow.revoke_model_permission",
                   {"name": "fraud", "username": "alice@corp.example"})
    assert revoked["status"] == "succeeded", revoked["error"]
    assert (revoked["output"]["changed"], revoked["output"]["left"]) == (True, None)
    assert mock.grants == {}
    assert reads(mock, "alice@corp.example", "alice-pw") == 403
    twice = call(mock, "mlflow.revoke_model_permission",
                 {"name": "fraud", "username": "alice@corp.example"})
    assert twice["output"]["changed"] is False


def test_a_pre_existing_permission_is_left_by_grant_and_by_revoke(
        start: Callable[..., MlflowMock], call: Run) -> None:
    mock = start(auth="basic")
    mock.add_user("alice@corp.example", "alice-pw")
    mock.grants[("alice@corp.example", "fraud")] = "EDIT"
    granted = call(mock, "mlflow.grant_model_permission",
                   {"name": "fraud", "username": "alice@corp.example"})
    assert (granted["output"]["changed"], granted["output"]["pre_existing"]) == (False, "EDIT")
    revoked = call(mock, "mlflow.revoke_model_permission",
                   {"name": "fraud", "username": "alice@corp.example"})
    assert (revoked["output"]["changed"], revoked["output"]["left"]) == (False, "EDIT")
    assert mock.grants == {("alice@corp.example", "fraud"): "EDIT"}


def test_without_the_auth_app_a_grant_fails_saying_so(start: Callable[..., MlflowMock],
                                                      call: Run) -> None:
    mock = start()
    result = call(mock, "mlflow.grant_model_permission",
                  {"name": "fraud", "username": "alice@corp.example"})
    assert result["status"] == "failed"
    assert "runs no auth app" in result["error"]


def test_get_registered_model_reads_its_tags(start: Callable[..., MlflowMock],
                                             call: Run) -> None:
    result = call(start(), "mlflow.get_registered_model", {"name": "fraud"})
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["tags"] == {"sensitivity": "restricted",
                                        "owner": "omar@corp.example"}
