"""The `requester` role on a real `crownguard serve`: a person with a requester token asks for
model access and reads their own requests, trimmed to the state, the times and the policy's
words; they never learn the risk reasons (a watchlist, a departure date) nor see another's
request, and every other endpoint refuses them. A viewer reads every request whole."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from servicetest import Served, start_service, write_service_files

from crownguard.engine.scenarios import MockFleet
from crownguard.plugins.mlflow.mock import MlflowMock

WHY = "retraining the fraud model on the Q3 data"
EVE, DANA = "eve@corp.example", "dana@corp.example"  # requesters, both flagged by HR
REQUESTERS = {EVE: "eve-token-0123456789abcdef0", DANA: "dana-token-0123456789abcdef"}
POLICY = {"weights": {"off_hours": 0},
          "access": {"models": {"tag": "sensitivity"}, "auto_grant_below": 15,
                     "approvers": {"owner_tag": "owner"},
                     "people": {EVE: {"watchlists": ["FLIGHT_RISK"]},
                                DANA: {"departure_date": "2026-12-20"}}}}
TIPS = ("FLIGHT_RISK", "watchlist", "2026-12-20", "departing", "risk")


@pytest.fixture(scope="module")
def mlflow() -> Iterator[MlflowMock]:
    mock = MlflowMock(auth="basic")
    mock.start()
    mock.default_permission = "NO_PERMISSIONS"
    mock.add_version("secret", {"weights.bin": b"secret"})
    mock.tag_model("secret", {"sensitivity": "restricted", "owner": "alice@corp.example"})
    for name in (EVE, DANA, "siem-reader"):
        mock.add_user(name, f"{name}-pw")
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, service_fleet: MockFleet,
           mlflow: MlflowMock) -> Iterator[Served]:
    files = write_service_files(tmp_path_factory.mktemp("requester"), service_fleet)
    config = json.loads(files["config"].read_text())
    settings = mlflow.connection_settings()
    files["env"]["CG_TEST_MLFLOW_PASSWORD"] = settings.pop("password")
    config["connections"]["mlflow"] = {**settings, "password": "${env:CG_TEST_MLFLOW_PASSWORD}"}
    for n, (name, token) in enumerate(REQUESTERS.items()):
        files["env"][f"CG_TEST_REQUESTER_{n}"] = token
        config["service"]["tokens"].append(
            {"name": name, "token": f"${{env:CG_TEST_REQUESTER_{n}}}", "role": "requester"})
    files["config"].write_text(json.dumps(config))
    policy = json.loads(files["policy"].read_text())
    files["policy"].write_text(json.dumps({**policy, **POLICY}))
    service = start_service(files, tmp_path_factory.mktemp("requester-journal") / "j.sqlite")
    yield service
    assert service.stop() == 0, "".join(service.log)
    assert "Traceback" not in "".join(service.log), "".join(service.log)


def as_requester(served: Served, who: str, method: str, path: str,
                 body: Any = None) -> requests.Response:
    return served.call(method, path, token=REQUESTERS[who], json_body=body)


def ask(served: Served, who: str) -> requests.Response:
    body = {"model": "secret", "justification": WHY, "duration_hours": 2}
    if who in REQUESTERS:
        return as_requester(served, who, "POST", "/v1/access-requests", body)
    return served.call("POST", "/v1/access-requests", who=who, json_body=body)


def no_tip_off(text: str) -> None:
    for tip in TIPS:
        assert tip not in text, f"{tip!r} reached the requester: {text}"


def test_a_requester_is_told_the_answer_but_not_the_reasons(served: Served) -> None:
    pending = ask(served, EVE)
    assert pending.status_code == 201, pending.text
    assert pending.json()["state"] == "pending"
    assert pending.json()["answer"] == "pending: waiting for an approver of secret"
    denied = ask(served, DANA)
    assert denied.json()["state"] == "denied"
    assert denied.json()["answer"].startswith("refused: the access policy does not allow")
    for answer in (pending, denied):
        assert "decision" not in answer.json() and "approvals" not in answer.json()
        no_tip_off(answer.text)
    shown = as_requester(served, DANA, "GET", f"/v1/access-requests/{denied.json()['id']}")
    assert shown.status_code == 200
    assert [h["type"] for h in shown.json()["history"]] == ["access_requested",
                                                            "access_denied"]
    no_tip_off(shown.text)
    # What a viewer and above see of the same request: the whole decision, with why.
    whole = served.call("GET", f"/v1/access-requests/{denied.json()['id']}").json()
    assert "leaves 2026-12-20" in whole["decision"]["reason"]
    assert whole["history"][0]["payload"]["decision"]["risk"]["reasons"]


def test_a_requester_lists_and_shows_only_their_own_requests(served: Served) -> None:
    theirs = ask(served, "siem-reader").json()["id"]  # a viewer asks for themselves too
    mine = ask(served, EVE).json()["id"]
    listed = as_requester(served, EVE, "GET", "/v1/access-requests")
    assert listed.status_code == 200
    requests_seen = listed.json()["access_requests"]
    assert mine in [r["id"] for r in requests_seen]
    assert {r["requester"] for r in requests_seen} == {EVE}
    no_tip_off(listed.text)
    other = as_requester(served, EVE, "GET", "/v1/access-requests?requester=siem-reader")
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    # Another's request is unknown to them, exactly as an id that does not exist.
    hidden = as_requester(served, EVE, "GET", f"/v1/access-requests/{theirs}")
    missing = as_requester(served, EVE, "GET", "/v1/access-requests/0123456789abcdef")
    assert hidden.status_code == missing.status_code == 404
    assert re.sub(theirs, "X", hidden.text) == re.sub("0123456789abcdef", "X", missing.text)
    revoke = as_requester(served, EVE, "POST", f"/v1/access-requests/{theirs}/revoke")
    assert revoke.status_code == 404
    # The viewer sees everyone's, with the reasons.
    everyone = served.call("GET", "/v1/access-requests").json()["access_requests"]
    assert {EVE, DANA, "siem-reader"} <= {r["requester"] for r in everyone}
    eve = next(r for r in everyone if r["id"] == mine)
    assert "on watchlist FLIGHT_RISK" in eve["decision"]["reason"]
    # Their own pending request they may withdraw.
    withdrawn = as_requester(served, EVE, "POST", f"/v1/access-requests/{mine}/revoke")
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "revoked"
    assert withdrawn.json()["answer"].startswith("withdrawn: ")
    no_tip_off(withdrawn.text)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/runs"), ("GET", "/v1/runs/0123456789abcdef"), ("GET", "/v1/audit"),
    ("GET", "/v1/playbooks"), ("GET", "/v1/intake/dead-letters"),
    ("POST", "/v1/runs/0123456789abcdef/cancel"),
    ("POST", "/v1/runs/0123456789abcdef/steps/ask/answer"),
    ("POST", "/v1/access-requests/0123456789abcdef/approve"),
    ("POST", "/v1/access-requests/0123456789abcdef/deny")])
def test_every_other_endpoint_refuses_a_requester(served: Served, method: str,
                                                   path: str) -> None:
    body = {"decision": "approve"} if path.endswith("/answer") else None
    refused = as_requester(served, EVE, method, path, body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == {
        "code": "forbidden", "where": "Authorization",
        "message": refused.json()["error"]["message"]}
    assert "is a requester" in refused.json()["error"]["message"]


def test_a_requester_cannot_sign_in_to_the_console(served: Served) -> None:
    page = served.http.get(f"{served.base}/ui/login", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    signed = served.http.post(f"{served.base}/ui/login", data={
        "csrf": csrf.group(1), "token": REQUESTERS[EVE], "next": "/ui/runs"},
        allow_redirects=False, timeout=30)
    assert signed.status_code == 403 and "needs viewer or above" in signed.text
    assert served.http.get(f"{served.base}/ui/runs", allow_redirects=False,
                           timeout=30).status_code == 303  # still not signed in
    assert served.http.get(f"{served.base}/metrics", timeout=30).status_code == 200
