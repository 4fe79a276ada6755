"""Access requests against a real `mlflow server` running its basic-auth app, whose default
permission is NO_PERMISSIONS: a granted request really lets the user read and download the
model, and after expiry (or revoke) the user's own calls answer 403 again. A permission the
user held before is left untouched. Skips without MLflow and its auth extra."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from test_mlflow_server import (
    ADMIN,
    ALICE,
    QUIET,
    Server,
    as_user,
    auth_app,
    files_for,
    launch,
    register,
    stop,
    wait_ready,
)

import crownguard.plugins.mlflow as mlflow_plugin
from crownguard.engine.journal import SQLiteJournal
from crownguard.engine.plugins import PluginHost
from crownguard.engine.service.access import AccessDesk, ActionRegistry, Caller
from crownguard.engine.service.access_store import AccessState, AccessStore
from crownguard.engine.service.settings import Role
from crownguard.engine.triage.policy import policy_from_mapping

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None or importlib.util.find_spec("flask_wtf") is None,
    reason="needs MLflow with its auth extra: pip install -e '.[test]' (brings mlflow[auth])")

WHY = "retraining the fraud model on the Q3 data"
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
POLICY = {"access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 25}}


@pytest.fixture(scope="module")
def patch() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patched:
        for key, value in QUIET.items():
            patched.setenv(key, value)
        yield patched


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, patch: pytest.MonkeyPatch
           ) -> Iterator[Server]:
    """A server where a user may read nothing not granted to them."""
    server = launch(tmp_path_factory.mktemp("mlflow-locked"), auth=True,
                    default_permission="NO_PERMISSIONS")
    try:
        wait_ready(server)
        with as_user(patch, ADMIN):
            from mlflow import MlflowClient

            server.experiment_id = MlflowClient(server.url).create_experiment("access")
        auth_app(server, "POST", "2.0/mlflow/users/create", username=ALICE[0],
                 password=ALICE[1])
        yield server
    finally:
        stop([server])


@pytest.fixture
def desk(locked: Server, isolated_host: Callable[..., PluginHost],
         crownguard_config: Callable[..., Any], tmp_path: Path) -> AccessDesk:
    host = isolated_host(mlflow_plugin, name="mlflow")
    config = crownguard_config({"mlflow": {"base_url": locked.url, "username": ADMIN[0],
                                           "password": ADMIN[1]}}, host=host)
    return AccessDesk(AccessStore(SQLiteJournal(tmp_path / "j.sqlite")),
                      policy_from_mapping(POLICY), ActionRegistry(host, config))


def model(server: Server, patch: pytest.MonkeyPatch, name: str, folder: Path) -> str:
    with as_user(patch, ADMIN):
        version = register(server, name, files_for(name), folder)
        from mlflow import MlflowClient

        MlflowClient(server.url).set_registered_model_tag(name, "sensitivity", "internal")
    return version


def alice_downloads(server: Server, name: str, version: str) -> int:
    """The status of Alice's own request for where to download the version from."""
    return requests.get(f"{server.url}/api/2.0/mlflow/model-versions/get-download-uri",
                        params={"name": name, "version": version}, auth=ALICE,
                        timeout=10).status_code


def test_a_grant_really_opens_the_model_and_its_expiry_really_closes_it(
        locked: Server, desk: AccessDesk, patch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    version = model(locked, patch, "jit-fraud", tmp_path)
    assert alice_downloads(locked, "jit-fraud", version) == 403
    request = desk.request(ALICE[0], "jit-fraud", WHY, duration_seconds=600, now=NOON)
    assert request.state == AccessState.GRANTED, request.decision
    assert request.grant is not None and request.grant["api"] in ("v3", "legacy")
    assert alice_downloads(locked, "jit-fraud", version) == 200
    assert desk.expire_due(NOON + timedelta(minutes=9)) == []
    [expired] = desk.expire_due(NOON + timedelta(minutes=11))
    assert expired.state == AccessState.EXPIRED
    assert alice_downloads(locked, "jit-fraud", version) == 403
    assert desk.expire_due(NOON + timedelta(hours=1)) == []


def test_revoke_closes_it_early_and_a_pre_existing_permission_is_left(
        locked: Server, desk: AccessDesk, patch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    version = model(locked, patch, "jit-early", tmp_path)
    request = desk.request(ALICE[0], "jit-early", WHY, duration_seconds=600, now=NOON)
    assert alice_downloads(locked, "jit-early", version) == 200
    desk.revoke(request.id, Caller(ALICE[0], Role.VIEWER), "done")
    assert alice_downloads(locked, "jit-early", version) == 403

    version = model(locked, patch, "jit-owned", tmp_path)
    auth_app(locked, "POST", "3.0/mlflow/users/permissions/grant", username=ALICE[0],
             resource_type="registered_model", resource_id="jit-owned", permission="EDIT")
    held = desk.request(ALICE[0], "jit-owned", WHY, duration_seconds=60, now=NOON)
    assert held.grant is not None and held.grant["pre_existing"] == "EDIT"
    desk.expire_due(NOON + timedelta(minutes=2))
    assert alice_downloads(locked, "jit-owned", version) == 200  # still hers: EDIT
