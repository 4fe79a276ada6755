"""`/v1/access-requests` on a real `crownguard serve` process, granting through the mlflow
mock's auth app: the permission is really there while granted, and the user's own read answers
403 once the service's timer has expired it, also across a restart."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from servicetest import TOKENS, Served, start_service, wait_for, write_service_files

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.mlflow.mock import MlflowMock

WHY = "retraining the fraud model on the Q3 data"
USERS = {name: f"{name}-mlflow-pw" for name in TOKENS}
POLICY = {"weights": {"off_hours": 0},  # the answers must not depend on the hour of the test
          "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 15,
                     "two_approvers_from": 60, "approvers": {"owner_tag": "owner"}}}


@pytest.fixture(scope="module")
def mlflow() -> Iterator[MlflowMock]:
    mock = MlflowMock(auth="basic")
    mock.start()
    mock.default_permission = "NO_PERMISSIONS"
    for model, tags in (("fraud", {"sensitivity": "internal"}),
                        ("secret", {"sensitivity": "restricted",
                                    "owner": "alice@corp.example"})):
        mock.add_version(model, {"weights.bin": model.encode()})
        mock.tag_model(model, tags)
    for name, password in USERS.items():
        mock.add_user(name, password)
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, service_fleet: MockFleet,
          mlflow: MlflowMock) -> dict[str, Any]:
    made = write_service_files(tmp_path_factory.mktemp("access"), service_fleet)
    config = json.loads(made["config"].read_text())
    settings = mlflow.connection_settings()
    made["env"]["CG_TEST_MLFLOW_PASSWORD"] = settings.pop("password")
    config["connections"]["mlflow"] = {**settings, "password": "${env:CG_TEST_MLFLOW_PASSWORD}"}
    made["config"].write_text(json.dumps(config))
    policy = json.loads(made["policy"].read_text())
    made["policy"].write_text(json.dumps({**policy, **POLICY}))
    made["env"]["CROWNGUARD_ACCESS_TICK_SECONDS"] = "0.2"
    return made


@pytest.fixture(scope="module")
def access(files: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    served = start_service(files, tmp_path_factory.mktemp("access-journal") / "j.sqlite")
    yield served
    assert served.stop() == 0, "".join(served.log)
    assert "Traceback" not in "".join(served.log), "".join(served.log)


def reads(mlflow: MlflowMock, who: str, model: str) -> int:
    return requests.get(mlflow.url_for("/api/2.0/mlflow/registered-models/get"),
                        params={"name": model}, auth=(who, USERS[who]), timeout=5).status_code


def ask(served: Served, who: str, model: str, hours: float = 1.0) -> requests.Response:
    return served.call("POST", "/v1/access-requests", who=who, json_body={
        "model": model, "justification": WHY, "duration_hours": hours})


def test_low_risk_is_granted_and_the_timer_takes_it_back(access: Served,
                                                         mlflow: MlflowMock) -> None:
    assert reads(mlflow, "siem-reader", "fraud") == 403
    made = ask(access, "siem-reader", "fraud", hours=1.5 / 3600)
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["requester"], body["state"]) == ("siem-reader", "granted")
    assert body["answer"].startswith("granted: read access to fraud until ")
    whole = access.call("GET", f"/v1/access-requests/{body['id']}").json()  # a viewer's read
    assert "granted by policy" in whole["decision"]["reason"]
    assert reads(mlflow, "siem-reader", "fraud") == 200
    wait_for(lambda: access.call("GET", f"/v1/access-requests/{body['id']}").json()["state"]
             == "expired", timeout=20, what="the grant to expire")
    assert reads(mlflow, "siem-reader", "fraud") == 403
    shown = access.call("GET", f"/v1/access-requests/{body['id']}").json()
    assert [h["type"] for h in shown["history"]] == [
        "access_requested", "access_approved", "access_granted", "access_expired"]


def test_medium_risk_waits_for_the_owner_then_a_responder_revokes(
        access: Served, mlflow: MlflowMock) -> None:
    made = ask(access, "ops-bot", "secret").json()
    assert made["state"] == "pending" and "decision" not in made
    assert access.call("GET", f"/v1/access-requests/{made['id']}").json()["decision"][
        "approvers"] == ["alice@corp.example"]
    rid = made["id"]
    viewer = access.call("POST", f"/v1/access-requests/{rid}/approve", who="siem-reader")
    assert viewer.status_code == 403 and "needs approver" in viewer.json()["error"]["message"]
    bob = access.call("POST", f"/v1/access-requests/{rid}/approve", who="bob@corp.example")
    assert bob.status_code == 403
    assert "not an approver" in bob.json()["error"]["message"]
    alice = access.call("POST", f"/v1/access-requests/{rid}/approve", who="alice@corp.example",
                        json_body={"comment": "ok for Q3"})
    assert alice.status_code == 200 and alice.json()["state"] == "granted", alice.text
    assert reads(mlflow, "ops-bot", "secret") == 200
    stranger = access.call("POST", f"/v1/access-requests/{rid}/revoke", who="siem-reader")
    assert stranger.status_code == 403
    revoked = access.call("POST", f"/v1/access-requests/{rid}/revoke", who="ops-bot")
    assert revoked.json()["state"] == "revoked" and reads(mlflow, "ops-bot", "secret") == 403
    again = access.call("POST", f"/v1/access-requests/{rid}/revoke", who="ops-bot")
    assert again.status_code == 409 and again.json()["error"]["code"] == "access_state"


def test_deny_list_show_and_refusals(access: Served) -> None:
    rid = ask(access, "bob@corp.example", "secret").json()["id"]
    denied = access.call("POST", f"/v1/access-requests/{rid}/deny", who="alice@corp.example",
                         json_body={"comment": "not this quarter"})
    assert denied.json()["state"] == "denied"
    listed = access.call("GET", "/v1/access-requests?state=denied").json()
    assert rid in [r["id"] for r in listed["access_requests"]]
    assert access.call("GET", "/v1/access-requests/nope").status_code == 404
    assert access.call("GET", "/v1/access-requests", who=None).status_code == 401
    short = access.call("POST", "/v1/access-requests", who="siem-reader",
                        json_body={"model": "fraud", "justification": "because"})
    assert short.status_code == 422  # /openapi.json says the policy's minimum
    assert "at least 20 characters" in short.json()["error"]["message"]
    sneaky = access.call("POST", "/v1/access-requests", who="siem-reader", json_body={
        "model": "fraud", "justification": WHY, "requester": "alice@corp.example"})
    assert sneaky.status_code == 422


def test_a_grant_due_while_the_service_was_down_is_taken_back_once_at_start(
        files: dict[str, Any], mlflow: MlflowMock, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    first = start_service(files, journal, env={"CROWNGUARD_ACCESS_TICK_SECONDS": "3600"})
    try:
        made = ask(first, "bob@corp.example", "fraud", hours=1 / 3600).json()
        assert made["state"] == "granted"
    finally:
        assert first.stop() == 0
    time.sleep(1.2)
    assert reads(mlflow, "bob@corp.example", "fraud") == 200  # nobody took it back yet
    second = start_service(files, journal)
    try:
        wait_for(lambda: reads(mlflow, "bob@corp.example", "fraud") == 403, timeout=20,
                 what="the restarted service to take the grant back")
    finally:
        assert second.stop() == 0
    with sqlite3.connect(journal) as db:
        kinds = [row[0] for row in db.execute(
            "SELECT type FROM entries WHERE run_id = ? ORDER BY seq", (f"access:{made['id']}",))]
    assert kinds.count("access_expired") == 1
