"""The mlflow plugin against a real MLflow tracking server.

Two `mlflow server` processes are started once for this module, each on a temporary SQLite
store and a free loopback port: a plain one, and one running MLflow's basic-auth app for the
permission part. Models, versions and artifacts are created with MLflow's own client, and what
the plugin did is checked through that client too. Without MLflow installed the module skips
(install the test extras: `pip install -e '.[test]'`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import crownguard.plugins.mlflow as mlflow_plugin
from crownguard.engine.plugins import PluginHost
from crownguard.plugins.mlflow.record import MARK_TAG, REASON_TAG, RUN_TAG

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None,
    reason="needs MLflow to start a real tracking server: pip install -e '.[test]' "
           "(brings mlflow[auth])")
NEEDS_AUTH_APP = pytest.mark.skipif(
    importlib.util.find_spec("flask_wtf") is None,
    reason="the basic-auth server needs MLflow's auth extra: pip install 'mlflow[auth]'")

ADMIN = ("admin", "crownguard-admin-password")
ALICE = ("alice@example.com", "alice-password-123")
BOB = ("bob", "bob-password-12345")
START_TIMEOUT = 120.0
RETRY = "retry: {max_attempts: 3, backoff_seconds: 0.01}"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
         # Background job runners (a pool of huey workers) are of no use here and slow to start.
         "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


# Runs `argv[2:]` and ends its whole process group once the test process (`argv[1]`) is gone,
# so a killed test run leaves no server behind.
WATCHDOG = """
import os, signal, subprocess, sys, time
parent, server = int(sys.argv[1]), subprocess.Popen(sys.argv[2:])
while server.poll() is None and os.getppid() == parent:
    time.sleep(0.5)
os.killpg(0, signal.SIGTERM)
"""


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    experiment_id: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(folder: Path, *, auth: bool, default_permission: str = "READ") -> Server:
    """Start `mlflow server` without waiting for it."""
    port = free_port()
    env = {**os.environ, **QUIET}
    command = [sys.executable, "-m", "mlflow", "server",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts"),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--uvicorn-opts", "--timeout-graceful-shutdown 1"]
    if auth:
        ini = folder / "basic_auth.ini"
        ini.write_text(f"[mlflow]\ndefault_permission = {default_permission}\n"
                       f"database_uri = sqlite:///{folder / 'auth.db'}\n"
                       "authorization_function = "
                       "mlflow.server.auth:authenticate_request_basic_auth\n"
                       # Without it every request re-derives the password hash (slow).
                       "auth_cache_ttl_seconds = 300\n")
        env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_AUTH_ADMIN_USERNAME=ADMIN[0],
                   MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN[1],
                   MLFLOW_FLASK_SERVER_SECRET_KEY="crownguard-tests-csrf-key")
        command += ["--app-name", "basic-auth"]
    log = folder / "server.log"
    with log.open("wb") as out:
        # A process group of its own (`mlflow server` forks uvicorn: all must go at the end),
        # led by a watchdog that takes the group down if this test process dies first.
        process = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), *command],
                                   env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=folder)
    return Server(f"http://127.0.0.1:{port}", process, log)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.process.returncode}:\n"
                        f"{tail(server.log)}")
        try:
            if requests.get(f"{server.url}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"mlflow server did not answer /health within {START_TIMEOUT:.0f}s:\n"
                f"{tail(server.log)}")


def stop(servers: list[Server]) -> None:
    running = [s for s in servers if s.process.poll() is None]
    for server in running:
        os.killpg(server.process.pid, signal.SIGTERM)
    for server in running:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:])


class Servers:
    """The module's servers, launched together (two cores start two servers in the time of
    one) and stopped together."""

    def __init__(self, folders: pytest.TempPathFactory):
        self.folders = folders
        self.started: dict[str, Server] = {}

    def launch(self, kind: str) -> Server:
        if kind not in self.started:
            self.started[kind] = launch(self.folders.mktemp(f"mlflow-{kind}"),
                                        auth=kind == "secured")
        return self.started[kind]

    def ready(self, kind: str) -> Server:
        server = self.launch(kind)
        wait_ready(server)
        return server


@pytest.fixture(scope="module")
def quiet_mlflow() -> Iterator[pytest.MonkeyPatch]:
    """MLflow's client in this process: no telemetry, credentials set per block."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in QUIET.items():
            patch.setenv(key, value)
        yield patch


@contextmanager
def as_user(patch: pytest.MonkeyPatch, user: tuple[str, str]) -> Iterator[None]:
    with patch.context() as scoped:
        scoped.setenv("MLFLOW_TRACKING_USERNAME", user[0])
        scoped.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
        yield


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            quiet_mlflow: pytest.MonkeyPatch) -> Iterator[Servers]:
    launched = Servers(tmp_path_factory)
    # Start every server this module's selected tests will use, right away.
    for item in request.session.items:
        skipped = any(m.args and m.args[0] for m in item.iter_markers("skipif"))
        if getattr(item, "module", None) is request.module and not skipped:
            for kind in ("plain", "secured"):
                if kind in getattr(item, "fixturenames", ()):
                    launched.launch(kind)
    try:
        yield launched
    finally:
        stop(list(launched.started.values()))


@pytest.fixture(scope="module")
def plain(servers: Servers) -> Server:
    server = servers.ready("plain")
    server.experiment_id = client_for(server).create_experiment("crownguard")
    return server


@pytest.fixture(scope="module")
def secured(servers: Servers, quiet_mlflow: pytest.MonkeyPatch) -> Server:
    server = servers.ready("secured")
    with as_user(quiet_mlflow, ADMIN):
        server.experiment_id = client_for(server).create_experiment("crownguard")
    for username, password in (ALICE, BOB):
        auth_app(server, "POST", "2.0/mlflow/users/create", username=username, password=password)
    return server


def client_for(server: Server) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(server.url)


def auth_app(server: Server, method: str, path: str, **body: str) -> dict[str, Any]:
    """The auth app's REST API as the admin. (MLflow's AuthServiceClient would do the same but
    imports the whole server app into the test process: seconds per module.)"""
    url = f"{server.url}/api/{path}"
    response = (requests.get(url, params=body, auth=ADMIN, timeout=10) if method == "GET"
                else requests.request(method, url, json=body, auth=ADMIN, timeout=10))
    response.raise_for_status()
    return dict(response.json())


def permission_of(server: Server, user: tuple[str, str], model: str) -> str:
    """What the server resolves for the user on the model (as its authorization check does)."""
    answer = auth_app(server, "GET", "3.0/mlflow/users/permissions/get", username=user[0],
                      resource_type="registered_model", resource_id=model)
    return str(answer["permission"])


def register(server: Server, name: str, files: dict[str, bytes], folder: Path, *,
             aliases: tuple[str, ...] = (), tags: dict[str, str] | None = None) -> str:
    """A new version of `name` whose artifacts are `files`, logged to a run; its number."""
    client = client_for(server)
    source = folder / f"{name}-{time.monotonic_ns()}"
    for path, content in files.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(content)
    run = client.create_run(server.experiment_id)
    client.log_artifacts(run.info.run_id, str(source), "model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(name, f"{run.info.artifact_uri}/model",
                                          run.info.run_id, tags=tags)
    for alias in aliases:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


@pytest.fixture
def host(isolated_host: Callable[..., PluginHost]) -> PluginHost:
    return isolated_host(mlflow_plugin, name="mlflow")


@pytest.fixture
def call(host: PluginHost, crownguard_config: Callable[..., Any],
         run_playbook: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def run(server: Server, action: str, inputs: dict[str, Any], *,
            user: tuple[str, str] | None = None, **settings: Any) -> dict[str, Any]:
        connection: dict[str, Any] = {"base_url": server.url, **settings}
        if user:
            connection.update(username=user[0], password=user[1])
        config = crownguard_config({"mlflow": connection}, host=host)
        text = (f"name: t\nsteps:\n  - id: s\n    action: {action}\n"
                f"    with: {json.dumps(inputs)}\n    {RETRY}\n")
        record = run_playbook(text, {}, config=config, host=host)
        return {**record["steps"]["s"], "run": record}

    return run


def files_for(seed: str) -> dict[str, bytes]:
    weights = hashlib.sha256(seed.encode()).digest() * 8192  # 256 KiB
    return {"model.safetensors": weights, "config.json": json.dumps({"seed": seed}).encode(),
            "tokenizer/vocab.txt": f"{seed}\nhello\nworld\n".encode()}


# --- a plain server ----------------------------------------------------------------------------


def test_read_and_search_versions(plain: Server, call: Callable[..., dict[str, Any]],
                                  tmp_path: Path) -> None:
    for index in range(3):
        register(plain, "churn", files_for(f"churn{index}"), tmp_path,
                 aliases=("champion",) if index == 1 else (),
                 tags={"team": "risk"} if index == 2 else None)
    by_alias = call(plain, "mlflow.get_model_version", {"name": "churn", "alias": "champion"})
    assert by_alias["status"] == "succeeded", by_alias["error"]
    assert by_alias["output"]["version"] == "2" and by_alias["output"]["aliases"] == ["champion"]
    assert by_alias["output"]["status"] == "READY"

    paged = call(plain, "mlflow.list_model_versions", {"name": "churn"}, page_size=1)
    assert paged["status"] == "succeeded", paged["error"]
    assert sorted(v["version"] for v in paged["output"]["versions"]) == ["1", "2", "3"]
    assert paged["output"]["truncated"] is False
    capped = call(plain, "mlflow.list_model_versions", {"name": "churn", "limit": 2}, page_size=1)
    assert capped["output"]["count"] == 2 and capped["output"]["truncated"] is True
    tagged = call(plain, "mlflow.list_model_versions",
                  {"name": "churn", "filter": "tags.team = 'risk'"})
    assert [(v["version"], v["tags"]) for v in tagged["output"]["versions"]] == [
        ("3", {"team": "risk"})]


def test_quarantine_then_release_restores_exactly(plain: Server,
                                                  call: Callable[..., dict[str, Any]],
                                                  tmp_path: Path) -> None:
    client = client_for(plain)
    first = register(plain, "fraud", files_for("fraud1"), tmp_path, aliases=("champion", "prod"),
                     tags={"team": "risk"})
    register(plain, "fraud", files_for("fraud2"), tmp_path, aliases=("challenger",))
    before_tags = dict(client.get_model_version("fraud", first).tags)

    quarantined = call(plain, "mlflow.quarantine_model_version",
                       {"name": "fraud", "version": first, "reason": "synced to personal cloud"})
    assert quarantined["status"] == "succeeded", quarantined["error"]
    assert quarantined["output"]["changed"] is True
    version = client.get_model_version("fraud", first)
    assert version.aliases == []
    assert client.get_registered_model("fraud").aliases == {"challenger": "2"}
    assert version.tags[MARK_TAG] == "true"
    assert version.tags[RUN_TAG] == quarantined["run"]["run_id"]
    assert version.tags[REASON_TAG] == "synced to personal cloud"
    assert version.tags["team"] == "risk"

    repeat = call(plain, "mlflow.quarantine_model_version",
                  {"name": "fraud", "version": first, "reason": "synced to personal cloud"})
    assert repeat["output"]["changed"] is False

    released = call(plain, "mlflow.release_model_version", {"name": "fraud", "version": first})
    assert released["status"] == "succeeded", released["error"]
    assert released["output"]["changed"] is True
    assert client.get_registered_model("fraud").aliases == {
        "champion": first, "prod": first, "challenger": "2"}
    assert dict(client.get_model_version("fraud", first).tags) == before_tags
    again = call(plain, "mlflow.release_model_version", {"name": "fraud", "version": first})
    assert again["output"]["changed"] is False and again["output"]["released"] is False


def test_files_are_listed_with_their_real_sha256(plain: Server,
                                                 call: Callable[..., dict[str, Any]],
                                                 tmp_path: Path) -> None:
    files = files_for("scoring")
    version = register(plain, "scoring", files, tmp_path)
    result = call(plain, "mlflow.list_model_files", {"name": "scoring", "version": version})
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["artifact_uri"].startswith("mlflow-artifacts:/")
    assert result["output"]["files"] == [
        {"path": path, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
        for path, content in sorted(files.items())]


def test_files_of_an_mlflow3_logged_model_version(plain: Server,
                                                  call: Callable[..., dict[str, Any]],
                                                  tmp_path: Path) -> None:
    client = client_for(plain)
    files = files_for("logged")
    for path, content in files.items():
        (tmp_path / "logged" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "logged" / path).write_bytes(content)
    model = client.create_logged_model(plain.experiment_id, name="logged")
    client.log_model_artifacts(model.model_id, str(tmp_path / "logged"))
    client.create_registered_model("logged")
    version = client.create_model_version("logged", f"models:/{model.model_id}",
                                          model_id=model.model_id)
    result = call(plain, "mlflow.list_model_files", {"name": "logged", "version": version.version})
    assert result["status"] == "succeeded", result["error"]
    assert {f["path"]: f["sha256"] for f in result["output"]["files"]} == {
        p: hashlib.sha256(c).hexdigest() for p, c in files.items()}


def test_unknown_version_is_not_found(plain: Server, call: Callable[..., dict[str, Any]]) -> None:
    result = call(plain, "mlflow.quarantine_model_version", {"name": "nope", "version": "1"})
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "mlflow get model version (HTTP 404)" in result["error"]
    assert "RESOURCE_DOES_NOT_EXIST" in result["error"]


def test_a_user_without_the_auth_app_is_reported(plain: Server,
                                                 call: Callable[..., dict[str, Any]],
                                                 tmp_path: Path) -> None:
    version = register(plain, "noauth", files_for("noauth"), tmp_path)
    result = call(plain, "mlflow.quarantine_model_version",
                  {"name": "noauth", "version": version, "user": ALICE[0]})
    assert result["status"] == "succeeded", result["error"]
    assert result["output"]["access"]["status"] == "auth_app_not_enabled"


# --- the basic-auth app ------------------------------------------------------------------------


@NEEDS_AUTH_APP
def test_quarantine_takes_a_users_access_and_release_gives_it_back(
        secured: Server, call: Callable[..., dict[str, Any]], tmp_path: Path,
        quiet_mlflow: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    with as_user(quiet_mlflow, ADMIN):
        version = register(secured, "secret-llm", files_for("llm"), tmp_path,
                           aliases=("production",))
    auth_app(secured, "POST", "3.0/mlflow/users/permissions/grant", username=ALICE[0],
             resource_type="registered_model", resource_id="secret-llm", permission="EDIT")
    for user in (ALICE, BOB):
        result = call(secured, "mlflow.quarantine_model_version",
                      {"name": "secret-llm", "version": version, "reason": "leak",
                       "user": user[0]}, user=ADMIN)
        assert result["status"] == "succeeded", result["error"]
        assert result["output"]["access"]["api"] == "v3"
        assert result["output"]["access"]["status"] == "revoked"

    assert permission_of(secured, ALICE, "secret-llm") == "DENY"
    assert permission_of(secured, BOB, "secret-llm") == "DENY"
    with as_user(quiet_mlflow, ADMIN):
        assert client_for(secured).get_registered_model("secret-llm").aliases == {}
    with as_user(quiet_mlflow, ALICE), pytest.raises(MlflowException, match="403"):
        client_for(secured).get_model_version("secret-llm", version)

    released = call(secured, "mlflow.release_model_version",
                    {"name": "secret-llm", "version": version}, user=ADMIN)
    assert released["status"] == "succeeded", released["error"]
    assert permission_of(secured, ALICE, "secret-llm") == "EDIT"
    # Bob had no grant of his own: he is back on the server default.
    assert permission_of(secured, BOB, "secret-llm") == "READ"
    with as_user(quiet_mlflow, ADMIN):
        assert client_for(secured).get_registered_model("secret-llm").aliases == {
            "production": version}
    with as_user(quiet_mlflow, ALICE):
        assert client_for(secured).get_model_version("secret-llm", version).version == version


@NEEDS_AUTH_APP
def test_wrong_password_is_a_clear_auth_error_without_the_password(
        secured: Server, call: Callable[..., dict[str, Any]]) -> None:
    wrong = (ADMIN[0], "definitely-not-it-4242")
    result = call(secured, "mlflow.get_model_version", {"name": "x", "version": "1"}, user=wrong)
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "mlflow get model version (HTTP 401): You are not authenticated" in result["error"]
    assert wrong[1] not in json.dumps(result["run"])


@NEEDS_AUTH_APP
def test_a_reader_cannot_quarantine(secured: Server, call: Callable[..., dict[str, Any]],
                                    tmp_path: Path, quiet_mlflow: pytest.MonkeyPatch) -> None:
    with as_user(quiet_mlflow, ADMIN):
        version = register(secured, "guarded", files_for("guarded"), tmp_path,
                           aliases=("production",))
    result = call(secured, "mlflow.quarantine_model_version",
                  {"name": "guarded", "version": version}, user=BOB)
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "mlflow tag model version (HTTP 403): Permission denied" in result["error"]
    with as_user(quiet_mlflow, ADMIN):
        assert client_for(secured).get_registered_model("guarded").aliases == {
            "production": version}


@NEEDS_AUTH_APP
def test_an_unknown_user_is_not_found(secured: Server, call: Callable[..., dict[str, Any]],
                                      tmp_path: Path, quiet_mlflow: pytest.MonkeyPatch) -> None:
    with as_user(quiet_mlflow, ADMIN):
        version = register(secured, "lonely", files_for("lonely"), tmp_path)
    result = call(secured, "mlflow.quarantine_model_version",
                  {"name": "lonely", "version": version, "user": "mallory"}, user=ADMIN)
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "mlflow get auth user (HTTP 404)" in result["error"]


@NEEDS_AUTH_APP
def test_the_containment_playbook_end_to_end(secured: Server, host: PluginHost,
                                             crownguard_config: Callable[..., Any],
                                             run_playbook: Callable[..., dict[str, Any]],
                                             tmp_path: Path,
                                             quiet_mlflow: pytest.MonkeyPatch) -> None:
    files = files_for("e2e")
    with as_user(quiet_mlflow, ADMIN):
        version = register(secured, "assistant", files, tmp_path, aliases=("production",))
    config = crownguard_config({"mlflow": {"base_url": secured.url, "username": ADMIN[0],
                                           "password": "${env:MLFLOW_ADMIN_PASSWORD}"}},
                               host=host, env={"MLFLOW_ADMIN_PASSWORD": ADMIN[1]})
    text = """
name: contain-model-leak
steps:
  - id: find
    action: mlflow.get_model_version
    with: {name: "${{ event.model }}", alias: production}
  - id: quarantine
    action: mlflow.quarantine_model_version
    needs: [find]
    with:
      name: "${{ event.model }}"
      version: "${{ steps.find.output.version }}"
      reason: "${{ event.reason }}"
      user: "${{ event.actor }}"
  - id: fingerprint
    action: mlflow.list_model_files
    needs: [find]
    with: {name: "${{ event.model }}", version: "${{ steps.find.output.version }}"}
"""
    event = {"model": "assistant", "actor": ALICE[0], "reason": "model copied to USB"}
    record = run_playbook(text, event, config=config, host=host)
    assert record["status"] == "succeeded", record
    assert record["steps"]["quarantine"]["output"]["aliases_removed"] == ["production"]
    assert {f["path"]: f["sha256"] for f in record["steps"]["fingerprint"]["output"]["files"]} \
        == {p: hashlib.sha256(c).hexdigest() for p, c in files.items()}
    assert ADMIN[1] not in json.dumps(record)
    with as_user(quiet_mlflow, ADMIN):
        tags = client_for(secured).get_model_version("assistant", version).tags
        assert tags[REASON_TAG] == "model copied to USB" and tags[RUN_TAG] == record["run_id"]
