"""Defects a second review of `crownguard serve` found, each through a real process: Slack
interactions that were a 500 or failed after their 200, and an access request's schema that
did not say what the policy asks."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from servicetest import Served, start_service
from test_slack_poll import PEOPLE, _files, signed

from crownguard.engine.errors import UnknownRun
from crownguard.engine.scenarios import MockFleet, seed
from crownguard.plugins.slack.blocks import REFERENCE_VERSION


def _error(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "where"}
    assert body["error"]["code"] == code, body
    return dict(body["error"])


@pytest.fixture(scope="module")
def slack_served(service_fleet: MockFleet, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[Served, MockFleet]]:
    service_fleet.reset()
    seed(service_fleet, PEOPLE)
    folder = tmp_path_factory.mktemp("followups")
    served = start_service(_files(folder, service_fleet, None), folder / "journal.sqlite")
    yield served, service_fleet
    assert served.stop() == 0, "".join(served.log)
    assert "Traceback" not in "".join(served.log), "".join(served.log)


def _interactions(journal: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT interaction, status FROM service_interactions").fetchall()


def _post(served: Served, body: bytes, headers: dict[str, str]) -> Any:
    return served.http.post(f"{served.base}/v1/slack/interactions", data=body,
                            headers=headers, timeout=30)


def _signed_body(secret: str, payload_text: str) -> tuple[bytes, dict[str, str]]:
    """A body `payload=<payload_text, form-encoded>` signed as Slack signs it."""
    body = b"payload=" + quote(payload_text, safe="").encode()
    ts = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
    return body, {"X-Slack-Signature": f"v0={signature.hexdigest()}",
                  "X-Slack-Request-Timestamp": ts,
                  "Content-Type": "application/x-www-form-urlencoded"}


def test_a_payload_nested_past_the_stack_is_a_400_not_a_500(
        slack_served: tuple[Served, MockFleet]) -> None:
    """`payload=[[[...]]]` 2000 deep, correctly signed: json.loads raised RecursionError,
    which the parse did not catch (ValueError only): `500 internal`."""
    served, fleet = slack_served
    body, headers = _signed_body(fleet.get("slack").signing_secret, "[" * 2000 + "]" * 2000)
    assert body.startswith(b"payload=%5B%5B") and body.endswith(b"%5D%5D")
    error = _error(_post(served, body, headers), 400, "not_an_interaction")
    assert error["where"] == "payload" and "deep" in error["message"]
    assert _interactions(served.journal) == []


def _click(user_id: str, **more: Any) -> dict[str, Any]:
    value = json.dumps({"v": REFERENCE_VERSION, "run_id": "r-followup", "step_id": "ask"})
    return {"type": "block_actions", "user": {"id": user_id, "username": "someone"},
            "team": {"id": "T0CROWN01"},
            "actions": [{"action_id": "crownguard_business_reason", "value": value,
                         "type": "button"}], **more}


def test_a_lone_surrogate_in_an_interaction_is_a_400_naming_the_field(
        slack_served: tuple[Served, MockFleet]) -> None:
    """`"user": {"id": "U\\ud800"}` was stored and answered 200, then failed in the
    background (UnicodeEncodeError asking Slack who that is): counted `failed`, the click
    lost while Slack was told it was taken."""
    served, fleet = slack_served
    secret = fleet.get("slack").signing_secret
    body, headers = signed(secret, _click("U\ud800"))
    assert b"%5Cud800" in body  # the escape as Slack's JSON would carry it
    error = _error(_post(served, body, headers), 400, "not_an_interaction")
    assert error["where"] == "user" and "surrogate" in error["message"], error
    justified = _click("U0GOOD", state={"values": {"crownguard_justification": {
        "justification": {"type": "plain_text_input",
                                           "value": "why \udfff"}}}})
    body, headers = signed(secret, justified)
    error = _error(_post(served, body, headers), 400, "not_an_interaction")
    assert error["where"] == "justification", error
    assert _interactions(served.journal) == []
    metrics = served.call("GET", "/metrics", who=None).text
    assert 'crownguard_slack_interactions_total{outcome="failed"}' not in metrics


def test_an_unknown_run_is_a_404_that_does_not_name_the_journals_file(served: Served) -> None:
    """`no run X in the journal /var/.../j.sqlite` went to any viewer: the server's layout."""
    fragments = [str(served.journal), served.journal.name, served.journal.parent.name]
    for method, path, who in (("GET", "/v1/runs/no-such-run-0001", "siem-reader"),
                              ("POST", "/v1/runs/no-such-run-0001/cancel", "ops-bot")):
        answer = served.call(method, path, who=who)
        error = _error(answer, 404, "unknown_run")
        assert error["where"] == "run_id" and "no-such-run-0001" in error["message"], error
        assert not [f for f in fragments if f in answer.text], answer.text
        assert "/" not in error["message"], error


def test_an_unknown_run_keeps_its_journal_apart_from_its_message() -> None:
    """The journal is still there for a local caller, and survives a pickle (a worker's)."""
    unknown = UnknownRun("r-1", "/var/lib/crownguard/j.sqlite")
    again = pickle.loads(pickle.dumps(unknown))
    assert (again.run_id, again.journal, str(again)) == \
        ("r-1", "/var/lib/crownguard/j.sqlite", "no run r-1 in this journal")


def test_the_justification_minimum_is_in_the_schema_and_answered_as_a_422(served: Served
                                                                          ) -> None:
    """`{"model": "0", "justification": ""}` passed /openapi.json (no minLength) and was a
    `400 bad_request`: a client generated from the schema could not know the policy's 20."""
    schema = served.call("GET", "/openapi.json", who=None).json()
    field = schema["components"]["schemas"]["RequestBody"]["properties"]["justification"]
    assert field["minLength"] == 20 and field["maxLength"] == 4000, field
    for text in ("", "too short", " " * 30, " " * 10 + "x" * 19 + "\n" * 10):
        asked = served.call("POST", "/v1/access-requests", who="alice@corp.example",
                            json_body={"model": "0", "justification": text})
        error = _error(asked, 422, "invalid_request")
        assert error["where"] == "body.justification", error
        assert f"at least 20 characters (got {len(text.strip())})" in error["message"], error
        assert re.search(field["pattern"], text) is None  # the schema refuses it too
    enough = " " + "x" * 20 + " "
    assert re.search(field["pattern"], enough)
    asked = served.call("POST", "/v1/access-requests", who="alice@corp.example",
                        json_body={"model": "0", "justification": enough})
    assert asked.status_code != 422 and "justification" not in asked.text, asked.text
