"""`POST /v1/runs/{id}/undo` of the model-access-request run that granted a request, on a real
`crownguard serve` process: the mlflow mock's permission is gone, the request is revoked with
the responder as the revoker, and a second undo is refused harmlessly; the undo of a denied
request's run changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from servicetest import Served, start_service, write_service_files

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.mlflow.mock import MlflowMock

WHY = "retraining the fraud model on the Q3 data"
POLICY = {"weights": {"off_hours": 0},
          "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 15}}


@pytest.fixture(scope="module")
def mlflow() -> Iterator[MlflowMock]:
    mock = MlflowMock(auth="basic")
    mock.start()
    mock.default_permission = "NO_PERMISSIONS"
    for model, tags in (("fraud", {"sensitivity": "internal"}), ("public", {})):
        mock.add_version(model, {"weights.bin": model.encode()})
        mock.tag_model(model, tags)
    mock.add_user("siem-reader", "pw")
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, service_fleet: MockFleet,
           mlflow: MlflowMock) -> Iterator[Served]:
    files = write_service_files(tmp_path_factory.mktemp("undo"), service_fleet)
    config = json.loads(files["config"].read_text())
    settings = mlflow.connection_settings()
    files["env"]["CG_TEST_MLFLOW_PASSWORD"] = settings.pop("password")
    config["connections"]["mlflow"] = {**settings, "password": "${env:CG_TEST_MLFLOW_PASSWORD}"}
    files["config"].write_text(json.dumps(config))
    files["policy"].write_text(json.dumps({**json.loads(files["policy"].read_text()),
                                           **POLICY}))
    service = start_service(files, tmp_path_factory.mktemp("undo-journal") / "j.sqlite")
    yield service
    assert service.stop() == 0, "".join(service.log)
    assert "Traceback" not in "".join(service.log), "".join(service.log)


def ask(served: Served, model: str) -> dict[str, Any]:
    made = served.call("POST", "/v1/access-requests", who="siem-reader", json_body={
        "model": model, "justification": WHY, "duration_hours": 2})
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    whole: dict[str, Any] = served.call("GET", f"/v1/access-requests/{request_id}").json()
    return whole


def test_undo_of_the_granting_run_revokes_once(served: Served, mlflow: MlflowMock) -> None:
    request = ask(served, "fraud")
    assert request["state"] == "granted"
    assert mlflow.grants == {("siem-reader", "fraud"): "READ"}
    run_id = request["decision"]["run_id"]

    viewer = served.call("POST", f"/v1/runs/{run_id}/undo", who="siem-reader")
    assert viewer.status_code == 403 and mlflow.grants  # undo needs a responder

    done = served.call("POST", f"/v1/runs/{run_id}/undo", who="ops-bot")
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["calls"] == 0 and body["run"]["status"] == "succeeded"
    assert body["linked"] == [{"what": f"access request {request['id']}: read access to "
                                       "fraud for siem-reader",
                               "undone": True, "note": "revoked by ops-bot"}]
    assert mlflow.grants == {}
    after = served.call("GET", f"/v1/access-requests/{request['id']}").json()
    assert (after["state"], after["revoked_by"]) == ("revoked", "ops-bot")
    assert after["history"][-1]["type"] == "access_revoked"
    assert after["history"][-1]["payload"]["by"] == "ops-bot"
    assert f"undo of run {run_id}" in json.dumps(after["history"][-1])

    again = served.call("POST", f"/v1/runs/{run_id}/undo", who="ops-bot")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "cannot_undo"
    assert "is revoked already" in again.json()["error"]["message"]
    assert served.call("GET", f"/v1/access-requests/{request['id']}").json()[
        "history"] == after["history"]


def test_undo_of_a_denied_requests_run_changes_nothing(served: Served,
                                                       mlflow: MlflowMock) -> None:
    request = ask(served, "public")
    assert request["state"] == "denied"
    refused = served.call("POST", f"/v1/runs/{request['decision']['run_id']}/undo",
                          who="ops-bot")
    assert refused.status_code == 409
    assert "was denied: nothing was granted" in refused.json()["error"]["message"]
    assert served.call("GET", f"/v1/access-requests/{request['id']}").json() == request
    assert ("siem-reader", "public") not in mlflow.grants
