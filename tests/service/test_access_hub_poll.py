"""A real `crownguard serve` polling a gated repo's pending requests on the Hub mock (the
policy's access.huggingface_poll): each becomes one access request, also across further polls
and a restart, decided by the shipped playbook and answered on the Hub (accepted, rejected,
rejected again on revoke), on a SQLite and on a PostgreSQL journal."""

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
                         "users": {"dana-sqlite": "dana@corp.example",
                                   "dana-postgres": "dana@corp.example"},
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


def requests_of(served: Served, kind: str) -> list[dict[str, Any]]:
    """The access requests of this test's Hub users (the mock is the module's)."""
    found = served.call("GET", "/v1/access-requests").json()["access_requests"]
    return [r for r in found if r["decision"]["source"]["user"].endswith(f"-{kind}")]


def polls(hub: HubMock) -> int:
    return len(hub.calls_to("GET", PENDING))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_hub_requests_become_access_requests_once_and_are_answered_there(
        files: dict[str, Any], hub: HubMock, tmp_path: Path, kind: str,
        request: pytest.FixtureRequest) -> None:
    alice, bob, dana = (f"{name}-{kind}" for name in ("alice", "bob", "dana"))
    hub.request_access(REPO, alice, email="alice@corp.example", fields=WHY)
    hub.request_access(REPO, bob, email="bob@corp.example", fields=WHY)
    hub.request_access(REPO, dana, fields=WHY)
    if kind == "postgres":  # the DSN through the environment, never in argv
        dsn = request.getfixturevalue("postgres_dsn")

        def serve() -> Served:
            return start_service(files, None, env={"CROWNGUARD_JOURNAL": dsn})
    else:
        journal = tmp_path / "j.sqlite"

        def serve() -> Served:
            return start_service(files, journal)
    served = serve()
    try:
        wait_for(lambda: len(requests_of(served, kind)) == 3, what="three access requests")
        # Each request is decided and answered on the Hub on its own: no order between them.
        wait_for(lambda: hub.access_status(REPO, alice) == "accepted", what="accepted")
        wait_for(lambda: hub.access_status(REPO, dana) == "rejected", what="rejected")
        assert hub.access_status(REPO, bob) == "pending"  # waits for the owner
        by_user = {r["decision"]["source"]["user"]: r for r in requests_of(served, kind)}
        assert {u: r["state"] for u, r in by_user.items()} == {
            alice: "granted", bob: "pending", dana: "denied"}
        assert by_user[bob]["requester"] == "bob@corp.example"
        assert by_user[alice]["decision"]["run_id"]  # the playbook's run decided it

        seen = polls(hub)
        wait_for(lambda: polls(hub) >= seen + 2, what="two more polls")
        assert len(requests_of(served, kind)) == 3  # bob's, pending there, not made again
    finally:
        assert served.stop() == 0, "".join(served.log)
    assert "Traceback" not in "".join(served.log), "".join(served.log)

    again = serve()
    try:
        seen = polls(hub)
        wait_for(lambda: polls(hub) >= seen + 2, what="polls after the restart")
        assert len(requests_of(again, kind)) == 3
        rid = by_user[bob]["id"]
        approved = again.call("POST", f"/v1/access-requests/{rid}/approve",
                              who="alice@corp.example", json_body={"comment": "ok for Q3"})
        assert approved.status_code == 200 and approved.json()["state"] == "granted"
        assert hub.access_status(REPO, bob) == "accepted"
        revoked = again.call("POST", f"/v1/access-requests/{rid}/revoke", who="ops-bot")
        assert revoked.json()["state"] == "revoked"
        assert hub.access_status(REPO, bob) == "rejected"
    finally:
        assert again.stop() == 0, "".join(again.log)
    assert "Traceback" not in "".join(again.log), "".join(again.log)
