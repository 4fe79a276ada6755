"""A real `crownguard serve` polling a gated repo's pending requests on the Hub mock (the
policy's access.huggingface_poll): each becomes one access request, also across further polls
and a restart, decided by the shipped playbook and answered on the Hub (accepted, rejected,
rejected again on revoke)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servicetest import Served, start_service, wait_for, write_service_files

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.huggingface.mock import HubMock

REPO = "acme-ml/fraud-llm"
PENDING = f"/api/models/{REPO}/user-access-request/pending"
WHY = {"Justification": "evaluating the fraud model on the Q3 holdout set"}
POLICY = {"weights": {"off_hours": 0}, "access": {
    "models": {"tag": "sensitivity"}, "auto_grant_below": 25, "two_approvers_from": 60,
    "approvers": {"owner_tag": "owner"},
    "people": {"dana@corp.example": {"departing": True},
               "bob@corp.example": {"watchlists": ["FLIGHT_RISK"]}},
    "huggingface_poll": {"interval_seconds": 1, "repos": [REPO],
                         "users": {"dana-d": "dana@corp.example"},
                         "email_domains": ["corp.example"]}}}


@pytest.fixture(scope="module")
def hub() -> Iterator[HubMock]:
    mock = HubMock()
    mock.start()
    mock.add_repo(REPO, gated="manual")
    mock.repo(REPO)["tags"] = ["sensitivity:restricted", "owner:alice@corp.example"]
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, service_fleet: MockFleet,
          hub: HubMock) -> dict[str, Any]:
    made = write_service_files(tmp_path_factory.mktemp("hub-access"), service_fleet)
    config = json.loads(made["config"].read_text())
    settings = hub.connection_settings()
    made["env"]["CG_TEST_HF_TOKEN"] = settings.pop("token")
    config["connections"]["huggingface"] = {**settings, "token": "${env:CG_TEST_HF_TOKEN}"}
    made["config"].write_text(json.dumps(config))
    policy = json.loads(made["policy"].read_text())
    made["policy"].write_text(json.dumps({**policy, **POLICY}))
    made["env"]["CROWNGUARD_ACCESS_TICK_SECONDS"] = "0.2"
    return made


def requests_of(served: Served) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = served.call("GET", "/v1/access-requests").json()[
        "access_requests"]
    return found


def polls(hub: HubMock) -> int:
    return len(hub.calls_to("GET", PENDING))


def test_hub_requests_become_access_requests_once_and_are_answered_there(
        files: dict[str, Any], hub: HubMock, tmp_path: Path) -> None:
    hub.request_access(REPO, "alice-h", email="alice@corp.example", fields=WHY)
    hub.request_access(REPO, "bob-b", email="bob@corp.example", fields=WHY)
    hub.request_access(REPO, "dana-d", fields=WHY)
    journal = tmp_path / "j.sqlite"
    served = start_service(files, journal)
    try:
        wait_for(lambda: len(requests_of(served)) == 3, what="three access requests")
        wait_for(lambda: hub.access_status(REPO, "alice-h") == "accepted", what="accepted")
        assert hub.access_status(REPO, "dana-d") == "rejected"
        assert hub.access_status(REPO, "bob-b") == "pending"  # waits for the owner
        by_user = {r["decision"]["source"]["user"]: r for r in requests_of(served)}
        assert {u: r["state"] for u, r in by_user.items()} == {
            "alice-h": "granted", "bob-b": "pending", "dana-d": "denied"}
        assert by_user["bob-b"]["requester"] == "bob@corp.example"
        assert by_user["alice-h"]["decision"]["run_id"]  # the playbook's run decided it

        seen = polls(hub)
        wait_for(lambda: polls(hub) >= seen + 2, what="two more polls")
        assert len(requests_of(served)) == 3  # bob's, still pending there, is not made again
    finally:
        assert served.stop() == 0, "".join(served.log)
    assert "Traceback" not in "".join(served.log), "".join(served.log)

    again = start_service(files, journal)
    try:
        seen = polls(hub)
        wait_for(lambda: polls(hub) >= seen + 2, what="polls after the restart")
        assert len(requests_of(again)) == 3
        rid = by_user["bob-b"]["id"]
        approved = again.call("POST", f"/v1/access-requests/{rid}/approve",
                              who="alice@corp.example", json_body={"comment": "ok for Q3"})
        assert approved.status_code == 200 and approved.json()["state"] == "granted"
        assert hub.access_status(REPO, "bob-b") == "accepted"
        revoked = again.call("POST", f"/v1/access-requests/{rid}/revoke", who="ops-bot")
        assert revoked.json()["state"] == "revoked"
        assert hub.access_status(REPO, "bob-b") == "rejected"
    finally:
        assert again.stop() == 0, "".join(again.log)
    assert "Traceback" not in "".join(again.log), "".join(again.log)
