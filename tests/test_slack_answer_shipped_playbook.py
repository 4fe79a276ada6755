"""Issue 13, item 1: the shipped cloud/gen-AI playbook's whole justification loop through a
signed Slack interaction. The playbook names the employee's e-mail as approver, Slack names
the clicking user by id: `crownguard slack-answer` resolves the id with users.info and answers
by the e-mail, with the id as an alias. The interaction bodies are built here from the nudge
Slack holds, as Slack builds them, and signed here (v0 HMAC-SHA256), not by the mock."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from crownguard.engine.journal import open_journal
from crownguard.engine.scenarios import MockFleet, seed
from crownguard.plugins.slack.mock.base import ALL_SCOPES

ROOT = Path(__file__).resolve().parents[1]
CLOUD = ROOT / "plugins" / "incydr" / "samples" / "model-to-personal-cloud.json"
PRIYA = "priya.raman@example.com"
BOB = "bob.okafor@example.com"
PEOPLE = {"slack": {"users": [{"email": PRIYA, "name": "Priya Raman"},
                              {"email": BOB, "name": "Bob Okafor"}]}}
COMMENTS = "/rest/api/3/issue/{key}/comment"
WHY = "benchmarking on my home GPU, deleted now"


@pytest.fixture
def vendors(fleet: MockFleet, fleet_connections: Any) -> tuple[MockFleet, Path, list[str]]:
    fleet.reset()
    seed(fleet, PEOPLE)
    config, secrets = fleet_connections(fleet)
    return fleet, config, secrets


@pytest.fixture
def waiting(run_cli: Any, vendors: tuple[MockFleet, Path, list[str]],
            tmp_path: Path) -> dict[str, Any]:
    """The shipped playbook started on the personal-cloud sample, waiting for Priya."""
    fleet, config, secrets = vendors
    journal = tmp_path / "journal.sqlite"
    code, out, err = run_cli("respond", CLOUD, "--config", config, "--journal", journal,
                             "--json")
    assert code == 3, err
    [result] = json.loads(out)
    [record] = result["runs"]
    assert record["playbook"] == "model-to-personal-cloud-or-genai"
    assert record["steps"]["await_answer"]["status"] == "waiting"
    slack = fleet.get("slack")
    nudge = record["steps"]["nudge"]["output"]
    [message] = [m for m in slack.messages(nudge["channel"]) if m["ts"] == nudge["ts"]]
    return {"fleet": fleet, "slack": slack, "config": config, "journal": journal,
            "secrets": secrets, "record": record, "nudge": nudge, "message": message,
            "users": {u["profile"]["email"]: u["id"] for u in slack.users.values()}}


def block_actions(message: dict[str, Any], channel: str, user_id: str, action_id: str,
                  justification: str | None) -> dict[str, Any]:
    """Slack's block_actions payload for a click on `action_id` in `message`."""
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    [button] = [e for e in actions["elements"] if e["action_id"] == action_id]
    [text_box] = [b for b in message["blocks"] if b["type"] == "input"]
    element = text_box["element"]
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": "someone", "name": "someone",
                 "team_id": "T0CROWN01"},
        "api_app_id": "A0CROWN01", "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": "1234567890123.1234567890123.abcdef0123456789abcdef0123456789",
        "team": {"id": "T0CROWN01", "domain": "crownguard-demo"},
        "enterprise": None, "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage"},
        "message": {k: v for k, v in message.items() if k != "metadata"},
        "state": {"values": {text_box["block_id"]: {element["action_id"]: {
            "type": "plain_text_input", "value": justification}}}},
        "response_url": "https://hooks.slack.com/actions/T0CROWN01/1/abc",
        "actions": [{"action_id": action_id, "block_id": actions["block_id"],
                     "text": button["text"], "value": button["value"], "type": "button",
                     "action_ts": f"{time.time():.6f}"}],
    }


def view_submission(private_metadata: str, user_id: str, justification: str) -> dict[str, Any]:
    """Slack's view_submission payload for a justification modal."""
    return {
        "type": "view_submission",
        "team": {"id": "T0CROWN01", "domain": "crownguard-demo"},
        "user": {"id": user_id, "username": "someone", "name": "someone",
                 "team_id": "T0CROWN01"},
        "api_app_id": "A0CROWN01", "token": "deprecated-verification-token",
        "trigger_id": "1234567890123.1234567890123.abcdef0123456789abcdef0123456789",
        "view": {"id": "V0ABCDEF12", "team_id": "T0CROWN01", "type": "modal",
                 "callback_id": "crownguard_justification",
                 "private_metadata": private_metadata, "blocks": [],
                 "state": {"values": {
                     "crownguard_justification": {"justification": {
                         "type": "plain_text_input", "value": justification}},
                     "crownguard_choice": {"choice": {"type": "radio_buttons",
                                                      "selected_option": {
                                                          "text": {"type": "plain_text",
                                                                   "text": "business reason"},
                                                          "value": "business_reason"}}}}},
                 "hash": "156772938.1827394", "app_id": "A0CROWN01", "bot_id": "B0CGBOT001"},
        "response_urls": [], "is_enterprise_install": False, "enterprise": None,
    }


def answer(run_cli: Any, w: dict[str, Any], payload: dict[str, Any],
           *extra: str) -> tuple[int, str, str]:
    """POST-as-Slack-would: form-encode, sign with the app's signing secret, hand over."""
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()))
    secret = w["slack"].signing_secret.encode()
    signature = "v0=" + hmac.new(secret, f"v0:{stamp}:{body}".encode(),
                                 hashlib.sha256).hexdigest()
    path = w["journal"].parent / "body.txt"
    path.write_text(body)
    return run_cli("slack-answer", "--body-file", path, "--config", w["config"], "--journal",
                   w["journal"], "--header", f"X-Slack-Signature: {signature}",
                   "--header", f"X-Slack-Request-Timestamp: {stamp}", *extra)


def approvals(w: dict[str, Any]) -> list[dict[str, Any]]:
    with open_journal(w["journal"]) as journal:
        return [a.to_dict() for a in journal.approvals(w["record"]["run_id"])]


def click(w: dict[str, Any], user: str, justification: str | None = WHY) -> dict[str, Any]:
    return block_actions(w["message"], w["nudge"]["channel"], user,
                         "crownguard_business_reason", justification)


def test_the_employees_click_answers_the_shipped_playbook_by_their_email(
        run_cli: Any, waiting: dict[str, Any]) -> None:
    w = waiting
    priya_id = w["users"][PRIYA]
    assert w["nudge"]["user_id"] == priya_id
    code, out, err = answer(run_cli, w, click(w, priya_id), "--json")
    assert code == 0, err
    assert err == ""  # the e-mail was known: nothing to warn about
    done = json.loads(out)
    assert done["status"] == "succeeded"
    assert done["steps"]["await_answer"]["output"]["by"] == PRIYA
    assert done["steps"]["record_answer"]["status"] == "succeeded"
    assert done["steps"]["escalate"]["status"] == "skipped"
    [info] = w["slack"].calls_to("GET", "/api/users.info")
    assert info.query == {"user": [priya_id]}
    [comment] = w["fleet"].get("jira").calls_to("POST", COMMENTS)
    assert f"Answer from {PRIYA}: business_reason: {WHY}" in json.dumps(comment.json)
    [approval] = approvals(w)
    assert (approval["by"], approval["accepted"], approval["decision"]) == \
        (PRIYA, True, "approve")
    assert approval["comment"] == f"business_reason: {WHY}"
    assert approval["reason"] == f"also known as {priya_id}"
    shown = "".join(run_cli("runs", "show", w["record"]["run_id"], "--journal",
                            w["journal"])[1:])
    assert all(secret not in shown + out for secret in w["secrets"])


def test_a_submitted_justification_modal_answers_it_too(run_cli: Any,
                                                        waiting: dict[str, Any]) -> None:
    w = waiting
    [button] = [e for b in w["message"]["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == "crownguard_business_reason"]
    reference = json.loads(button["value"])
    metadata = json.dumps({"v": reference["v"], "run_id": reference["run_id"],
                           "step_id": reference["step_id"]})
    code, out, err = answer(run_cli, w, view_submission(metadata, w["users"][PRIYA], WHY),
                            "--json")
    assert code == 0, err
    assert json.loads(out)["steps"]["await_answer"]["output"]["by"] == PRIYA


def test_a_click_by_someone_not_among_the_approvers_is_refused(
        run_cli: Any, waiting: dict[str, Any]) -> None:
    w = waiting
    bob_id = w["users"][BOB]
    code, _, err = answer(run_cli, w, click(w, bob_id))
    assert code == 1
    assert (f"refused and recorded: {BOB} (also {bob_id}) may not answer "
            f"(allowed: {PRIYA})") in err
    [approval] = approvals(w)
    assert (approval["by"], approval["accepted"]) == (BOB, False)
    with open_journal(w["journal"]) as journal:
        assert journal.get_run(w["record"]["run_id"]).status == "waiting"
    assert w["fleet"].get("jira").calls_to("POST", COMMENTS) == []
    # Priya can still answer.
    code, _, err = answer(run_cli, w, click(w, w["users"][PRIYA]))
    assert code == 0, err


def test_an_email_in_another_case_still_matches(run_cli: Any,
                                                waiting: dict[str, Any]) -> None:
    w = waiting
    priya = w["slack"].users[w["users"][PRIYA]]
    priya["profile"]["email"] = PRIYA.upper()  # directories spell addresses as they like
    code, out, err = answer(run_cli, w, click(w, priya["id"]), "--json")
    assert code == 0, err
    assert json.loads(out)["steps"]["await_answer"]["output"]["by"] == PRIYA.upper()


@pytest.mark.parametrize(("scopes", "why"), [
    (ALL_SCOPES - {"users:read.email"},
     "Slack gave no e-mail for {id}: the app's token needs the scope users:read.email"),
    (ALL_SCOPES - {"users:read", "users:read.email"},
     "Slack could not say who {id} is (slack users.info (HTTP 200) [request id "),
])
def test_without_the_email_the_answer_is_by_the_slack_id_and_says_why(
        run_cli: Any, waiting: dict[str, Any], scopes: frozenset[str], why: str) -> None:
    w = waiting
    priya_id = w["users"][PRIYA]
    w["slack"].set_scopes(scopes)
    code, _, err = answer(run_cli, w, click(w, priya_id))
    assert code == 1
    assert f"answering as Slack user {priya_id} alone: {why.format(id=priya_id)}" in err
    if "users:read" not in scopes:
        assert "missing_scope: the token lacks the scope 'users:read' this method needs" in err
    assert f"refused and recorded: {priya_id} may not answer (allowed: {PRIYA})" in err
    [approval] = approvals(w)
    assert (approval["by"], approval["accepted"]) == (priya_id, False)
    assert all(secret not in err for secret in w["secrets"])


def test_a_short_rate_limit_on_users_info_is_waited_out(run_cli: Any,
                                                        waiting: dict[str, Any]) -> None:
    w = waiting
    w["slack"].inject("status", status=429, retry_after=0.2, path="/api/users.info", times=1)
    code, out, err = answer(run_cli, w, click(w, w["users"][PRIYA]), "--json")
    assert code == 0, err
    assert len(w["slack"].calls_to("GET", "/api/users.info")) == 2
    assert json.loads(out)["steps"]["await_answer"]["output"]["by"] == PRIYA


def test_a_long_rate_limit_falls_back_to_the_slack_id(run_cli: Any,
                                                      waiting: dict[str, Any]) -> None:
    w = waiting
    priya_id = w["users"][PRIYA]
    w["slack"].inject("status", status=429, retry_after=120, path="/api/users.info", times=1)
    started = time.monotonic()
    code, _, err = answer(run_cli, w, click(w, priya_id))
    assert time.monotonic() - started < 30  # it did not sit out the two minutes
    assert code == 1
    assert f"Slack could not say who {priya_id} is (" in err and "ratelimited" in err
