"""Access requests in Slack through a real `crownguard serve`: the requester's confirmation in
the policy's words, the approvers' Approve/Deny buttons, and a click, signed as Slack signs it,
decided by the access desk as the clicking person (resolved to their e-mail): a stranger is
refused, one approver of two leaves it pending, the second grants it in MLflow; the requester
is told of the grant and of its revoke."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from servicetest import Served, start_service, wait_for, write_service_files

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.mlflow.mock import MlflowMock
from crownguard.plugins.slack.mock import SlackMock

WHY = "retraining the fraud model on the Q3 data"
EVE, ALICE, BOB = "eve@corp.example", "alice@corp.example", "bob@corp.example"
CAROL = "carol@corp.example"  # in Slack, not an approver of the model
EVE_TOKEN = "eve-token-0123456789abcdef0"
POLICY = {"weights": {"off_hours": 0},
          "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 15,
                     "two_approvers_from": 40, "approvers": {"owner_tag": "owner"},
                     "people": {EVE: {"watchlists": ["FLIGHT_RISK"]}}}}


@pytest.fixture(scope="module")
def mlflow() -> Iterator[MlflowMock]:
    mock = MlflowMock(auth="basic")
    mock.start()
    mock.default_permission = "NO_PERMISSIONS"
    mock.add_version("secret", {"weights.bin": b"secret"})
    mock.tag_model("secret", {"sensitivity": "restricted", "owner": f"{ALICE},{BOB}"})
    mock.add_user(EVE, "eve-pw")
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackMock]:
    mock = SlackMock()
    mock.start()
    for person in (EVE, ALICE, BOB, CAROL):
        mock.add_user(person, person.split("@")[0].title())
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, service_fleet: MockFleet,
           mlflow: MlflowMock, slack: SlackMock) -> Iterator[Served]:
    files = write_service_files(tmp_path_factory.mktemp("access-slack"), service_fleet)
    config = json.loads(files["config"].read_text())
    settings = mlflow.connection_settings()
    env = files["env"]
    env["CG_TEST_MLFLOW_PASSWORD"] = settings.pop("password")
    config["connections"]["mlflow"] = {**settings, "password": "${env:CG_TEST_MLFLOW_PASSWORD}"}
    env["CG_TEST_SLACK_TOKEN"], env["CG_TEST_SLACK_SIGNING"] = (slack.bot_token,
                                                                slack.signing_secret)
    config["connections"]["slack"] = {"base_url": slack.base_url + "/api",
                                      "token": "${env:CG_TEST_SLACK_TOKEN}",
                                      "signing_secret": "${env:CG_TEST_SLACK_SIGNING}"}
    env["CG_TEST_EVE_TOKEN"] = EVE_TOKEN
    config["service"]["tokens"].append({"name": EVE, "token": "${env:CG_TEST_EVE_TOKEN}",
                                        "role": "requester"})
    files["config"].write_text(json.dumps(config))
    policy = json.loads(files["policy"].read_text())
    files["policy"].write_text(json.dumps({**policy, **POLICY}))
    env["CROWNGUARD_ACCESS_TICK_SECONDS"] = "0.2"
    service = start_service(files, tmp_path_factory.mktemp("access-slack-j") / "j.sqlite")
    yield service
    assert service.stop() == 0, "".join(service.log)
    log = "".join(service.log)
    assert "Traceback" not in log, log
    assert slack.signing_secret not in log and slack.bot_token not in log


def user_id(slack: SlackMock, email: str) -> str:
    return next(u["id"] for u in slack.users.values() if u["profile"]["email"] == email)


def dm(slack: SlackMock, email: str) -> tuple[str, list[dict[str, Any]]]:
    channel = slack.dm_of(user_id(slack, email))
    return (channel or "", [] if channel is None else slack.messages(channel))


def reads(mlflow: MlflowMock) -> int:
    return requests.get(mlflow.url_for("/api/2.0/mlflow/registered-models/get"),
                        params={"name": "secret"}, auth=(EVE, "eve-pw"), timeout=5).status_code


def ask(served: Served) -> dict[str, Any]:
    made = served.call("POST", "/v1/access-requests", token=EVE_TOKEN, json_body={
        "model": "secret", "justification": WHY, "duration_hours": 2})
    assert made.status_code == 201, made.text
    return dict(made.json())


def the_ask(slack: SlackMock, approver: str, request_id: str) -> tuple[str, dict[str, Any]]:
    """The approver's DM and the message asking them about the request."""
    def found() -> tuple[str, dict[str, Any]] | None:
        channel, messages = dm(slack, approver)
        asks = [m for m in messages if request_id in str(m.get("text"))]
        return (channel, asks[0]) if asks else None

    return wait_for(found, what=f"{approver}'s Slack message about {request_id}")


def click(served: Served, slack: SlackMock, asked: tuple[str, dict[str, Any]], choice: str,
          who: str) -> None:
    body, headers = slack.click(asked[0], asked[1]["ts"], choice, user_id(slack, who))
    answered = served.http.post(f"{served.base}/v1/slack/interactions", data=body.encode(),
                                headers=headers, timeout=30)
    assert answered.status_code == 200 and answered.content == b"", answered.text


def counted(served: Served, outcome: str) -> float:
    metrics = served.http.get(f"{served.base}/metrics", timeout=30).text
    line = f'crownguard_slack_interactions_total{{outcome="{outcome}"}} '
    return next((float(row[len(line):]) for row in metrics.splitlines()
                 if row.startswith(line)), 0.0)


def request_of(served: Served, request_id: str) -> dict[str, Any]:
    return dict(served.call("GET", f"/v1/access-requests/{request_id}").json())


def test_two_approvers_click_approve_in_slack_and_the_grant_is_made(
        served: Served, slack: SlackMock, mlflow: MlflowMock) -> None:
    made = ask(served)
    rid = made["id"]
    assert made["state"] == "pending" and reads(mlflow) == 403
    confirmed = wait_for(lambda: dm(slack, EVE)[1], what="the requester's confirmation")
    assert confirmed[0]["text"] == (f"Your access request {rid} for read access to secret for "
                                    "2 h is received. Pending: waiting for an approver of "
                                    "secret.")
    alice, bob = the_ask(slack, ALICE, rid), the_ask(slack, BOB, rid)
    assert "FLIGHT_RISK" in alice[1]["text"] and "2 approvals needed" in alice[1]["text"]
    assert dm(slack, CAROL)[1] == []
    # Carol presses Alice's button (a forwarded message): not an approver of this model.
    refused = counted(served, "refused")
    click(served, slack, alice, "approve", CAROL)
    wait_for(lambda: counted(served, "refused") == refused + 1, what="Carol refused")
    assert request_of(served, rid)["approvals"] == []
    click(served, slack, alice, "approve", ALICE)
    wait_for(lambda: request_of(served, rid)["approvals"], what="Alice's approval")
    assert request_of(served, rid)["state"] == "pending" and reads(mlflow) == 403
    click(served, slack, alice, "approve", ALICE)  # her second vote does not count
    wait_for(lambda: counted(served, "refused") == refused + 2, what="Alice's second vote")
    click(served, slack, bob, "approve", BOB)
    wait_for(lambda: request_of(served, rid)["state"] == "granted", what="the grant")
    granted = request_of(served, rid)
    assert [a["by"] for a in granted["approvals"]] == [ALICE, BOB]
    assert granted["decided_by"] == BOB and reads(mlflow) == 200
    told = wait_for(lambda: [m for m in dm(slack, EVE)[1][1:]], what="the grant told")
    assert told[0]["text"].startswith(f"Access request {rid}: granted: read access to secret "
                                      "until ")
    # She ends it herself; she is told, and the permission is gone.
    revoked = served.call("POST", f"/v1/access-requests/{rid}/revoke", token=EVE_TOKEN)
    assert revoked.json()["state"] == "revoked" and reads(mlflow) == 403
    last = wait_for(lambda: dm(slack, EVE)[1][2:], what="the revoke told")
    assert last[0]["text"].startswith(f"Access request {rid}: revoked: your read access")
    assert not any("FLIGHT_RISK" in str(m["text"]) for m in dm(slack, EVE)[1])


def test_an_approver_denies_in_slack_and_the_requester_is_told_no_more(
        served: Served, slack: SlackMock) -> None:
    rid = ask(served)["id"]
    before = len(wait_for(lambda: [m for m in dm(slack, EVE)[1] if rid in str(m["text"])],
                          what="the confirmation"))
    click(served, slack, the_ask(slack, BOB, rid), "deny", BOB)
    wait_for(lambda: request_of(served, rid)["state"] == "denied", what="the denial")
    assert request_of(served, rid)["decided_by"] == BOB
    told = wait_for(lambda: [m for m in dm(slack, EVE)[1] if rid in str(m["text"])][before:],
                    what="the denial told")
    assert told[0]["text"] == (f"Access request {rid}: refused: the access policy does not "
                               f"allow this request for secret; an admin can review request "
                               f"{rid}.")


def test_a_request_is_answered_without_waiting_for_slack(served: Served,
                                                         slack: SlackMock) -> None:
    slack.inject("latency", seconds=3, path="/api/users.lookupByEmail", times=None)
    try:
        started = time.monotonic()
        rid = ask(served)["id"]
        assert time.monotonic() - started < 2.5  # three slow look-ups are not waited for
    finally:
        slack.clear_faults()
    wait_for(lambda: [m for m in dm(slack, EVE)[1] if rid in str(m["text"])], timeout=30,
             what="the confirmation, sent in the background")
