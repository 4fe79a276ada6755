"""slack.parse_interaction: Slack's request signature, block_actions and view_submission
payloads built as Slack sends them, and the answer recorded by a playbook run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

import crownguard.plugins.slack as slack_plugin
from crownguard.engine import AuthError, BadResponse, Config
from crownguard.plugins.slack.actions import parse_interaction, send_nudge
from crownguard.plugins.slack.blocks import encode_reference
from crownguard.plugins.slack.mock import SlackMock
from crownguard.plugins.slack.mock.interactions import signed_request
from crownguard.plugins.slack.signing import compute_signature, verify_signature

NUDGE = {"email": "ada@example.com", "file_name": "llama-ft-q4.safetensors",
         "policy": "AI model handling policy"}


@pytest.fixture
def slack(mock_server: Any) -> SlackMock:
    return mock_server(SlackMock)


@pytest.fixture
def host(isolated_host: Any) -> Any:
    return isolated_host(slack_plugin, name="slack")


@pytest.fixture
def config(crownguard_config: Any, host: Any, slack: SlackMock) -> Config:
    return crownguard_config({"slack": slack.connection_settings()}, host=host)


@pytest.fixture
def ada(slack: SlackMock) -> str:
    return slack.add_user("ada@example.com", "Ada Lovelace")


@pytest.fixture
def call(call_action: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Call an action the way the runner does (the step is `nudge` unless told)."""

    def run(action: Any, inputs: dict[str, Any], config: Config, *, run_id: str = "run-1",
            step_id: str = "nudge") -> dict[str, Any]:
        output: dict[str, Any] = call_action(action, inputs, config, run_id=run_id,
                                             step_id=step_id)
        return output

    return run


@pytest.fixture
def nudge(slack: SlackMock, config: Config, ada: str, call: Any) -> dict[str, Any]:
    return call(send_nudge, NUDGE, config, run_id="run-7", step_id="nudge")


# --- the signature -------------------------------------------------------------------------------


def test_signature_matches_slacks_documented_example() -> None:
    # docs.slack.dev/authentication/verifying-requests-from-slack, the worked example.
    body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
            "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
            "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            "commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    assert compute_signature(secret, "1531420618", body.encode()) == expected
    verify_signature(secret, {"x-slack-signature": expected,
                              "x-slack-request-timestamp": "1531420618"},
                     body.encode(), now=1531420618 + 60)


def test_button_answer_with_justification(slack: SlackMock, config: Config, ada: str,
                                          nudge: dict[str, Any], call: Any) -> None:
    body, headers = slack.click(nudge["channel"], nudge["ts"], "business_reason", ada,
                                justification="  Benchmarking for the Q3 review  ")
    answer = call(parse_interaction, {"body": body, "headers": headers}, config)

    assert answer == {"run_id": "run-7", "step_id": "nudge", "user": ada, "user_name": "ada",
                      "team_id": SlackMock.TEAM_ID, "choice": "business_reason",
                      "justification": "Benchmarking for the Q3 review",
                      "interaction_type": "block_actions",
                      "message": {"channel": nudge["channel"], "ts": nudge["ts"]}}


def test_mistake_button_without_text(slack: SlackMock, config: Config, ada: str,
                                     nudge: dict[str, Any], call: Any) -> None:
    body, headers = slack.click(nudge["channel"], nudge["ts"], "mistake", ada)
    answer = call(parse_interaction, {"body": body, "headers": headers}, config)
    assert answer["choice"] == "mistake" and answer["justification"] is None


def test_headers_are_matched_whatever_their_case(slack: SlackMock, config: Config, ada: str,
                                                 nudge: dict[str, Any], call: Any) -> None:
    body, headers = slack.click(nudge["channel"], nudge["ts"], "mistake", ada)
    lower = {k.lower(): v for k, v in headers.items()}
    assert call(parse_interaction, {"body": body, "headers": lower}, config)["choice"] == "mistake"


def test_wrong_signing_secret_is_rejected(slack: SlackMock, config: Config, ada: str,
                                          nudge: dict[str, Any], call: Any) -> None:
    payload = json.loads(_payload_of(slack.click(nudge["channel"], nudge["ts"], "mistake",
                                                 ada)[0]))
    body, headers = signed_request(payload, "not-the-apps-signing-secret")
    with pytest.raises(AuthError) as caught:
        call(parse_interaction, {"body": body, "headers": headers}, config)
    assert "signature does not match" in str(caught.value)
    assert (caught.value.vendor, caught.value.operation) == ("slack", "verify request signature")
    assert slack.signing_secret not in str(caught.value)


def test_tampered_body_is_rejected(slack: SlackMock, config: Config, ada: str,
                                   nudge: dict[str, Any], call: Any) -> None:
    body, headers = slack.click(nudge["channel"], nudge["ts"], "mistake", ada)
    forged = body.replace("mistake", "business_reason")
    assert forged != body
    with pytest.raises(AuthError, match="signature does not match"):
        call(parse_interaction, {"body": forged, "headers": headers}, config)


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (-3600, "old"), (400, "future")])
def test_stale_or_future_timestamp_is_rejected(slack: SlackMock, config: Config, ada: str,
                                               nudge: dict[str, Any], offset: int,
                                               word: str, call: Any) -> None:
    body, headers = slack.click(nudge["channel"], nudge["ts"], "mistake", ada,
                                timestamp=int(time.time()) + offset)
    with pytest.raises(AuthError) as caught:
        call(parse_interaction, {"body": body, "headers": headers}, config)
    assert word in str(caught.value) and "limit 300 s" in str(caught.value)


def test_a_tighter_age_limit_can_be_asked_for(slack: SlackMock, config: Config, ada: str,
                                              nudge: dict[str, Any], call: Any) -> None:
    body, headers = slack.click(nudge["channel"], nudge["ts"], "mistake", ada,
                                timestamp=int(time.time()) - 120)
    assert call(parse_interaction, {"body": body, "headers": headers}, config)
    with pytest.raises(AuthError, match="limit 60 s"):
        call(parse_interaction, {"body": body, "headers": headers, "max_age_seconds": 60}, config)


def test_missing_signature_headers(slack: SlackMock, config: Config, ada: str,
                                   nudge: dict[str, Any], call: Any) -> None:
    body, _ = slack.click(nudge["channel"], nudge["ts"], "mistake", ada)
    with pytest.raises(AuthError, match="did not come from Slack"):
        call(parse_interaction, {"body": body, "headers": {}}, config)


# --- payloads ------------------------------------------------------------------------------------


def test_view_submission_with_private_metadata(slack: SlackMock, config: Config,
                                               ada: str, call: Any) -> None:
    body, headers = slack.submit_view(encode_reference("run-3", "await_answer"), ada,
                                      justification="Needed for the customer demo",
                                      choice="business_reason")
    answer = call(parse_interaction, {"body": body, "headers": headers}, config)

    assert (answer["run_id"], answer["step_id"]) == ("run-3", "await_answer")
    assert answer["choice"] == "business_reason"
    assert answer["justification"] == "Needed for the customer demo"
    assert answer["interaction_type"] == "view_submission" and answer["message"] is None


def test_a_payload_that_is_not_a_nudge_answer(slack: SlackMock, config: Config, call: Any) -> None:
    payload = {"type": "block_actions", "user": {"id": "U0X", "team_id": "T0X"},
               "actions": [{"action_id": "approve_expense", "value": "42", "type": "button"}]}
    body, headers = signed_request(payload, slack.signing_secret)
    with pytest.raises(BadResponse, match="not a crownguard nudge button|none of the"):
        call(parse_interaction, {"body": body, "headers": headers}, config)


def test_a_button_value_that_lies_about_its_choice(slack: SlackMock, config: Config,
                                                   call: Any) -> None:
    value = encode_reference("run-1", "nudge", "business_reason")
    payload = {"type": "block_actions", "user": {"id": "U0X", "team_id": "T0X"},
               "actions": [{"action_id": "crownguard_mistake", "value": value, "type": "button"}]}
    body, headers = signed_request(payload, slack.signing_secret)
    with pytest.raises(BadResponse, match="does not match the button"):
        call(parse_interaction, {"body": body, "headers": headers}, config)


@pytest.mark.parametrize("body", ["payload=%7Bnot-json", "text=hello", "payload=%5B1%2C2%5D",
                                  urlencode({"payload": json.dumps({"type": "message_action"})})])
def test_bodies_that_are_not_interactions(slack: SlackMock, config: Config, body: str,
                                          call: Any) -> None:
    stamp = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": compute_signature(slack.signing_secret, stamp, body.encode())}
    with pytest.raises(BadResponse) as caught:
        call(parse_interaction, {"body": body, "headers": headers}, config)
    assert caught.value.operation == "parse interaction"


def test_without_a_signing_secret(crownguard_config: Any, host: Any, slack: SlackMock,
                                  ada: str, call: Any) -> None:
    settings = {k: v for k, v in slack.connection_settings().items() if k != "signing_secret"}
    config = crownguard_config({"slack": settings}, host=host)
    with pytest.raises(Exception, match="no signing_secret"):
        call(parse_interaction, {"body": "payload=%7B%7D", "headers": {}}, config)


# --- recording the answer in a run ---------------------------------------------------------------

RECORD_ANSWER = """
name: record-nudge-answer
steps:
  - id: answer
    action: slack.parse_interaction
    with:
      body: "${{ event.body }}"
      headers: "${{ event.headers }}"
  - id: tell_soc
    action: slack.post_message
    needs: [answer]
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    with:
      channel: "#soc-alerts"
      text: "${{ steps.answer.output.user }} answered ${{ steps.answer.output.choice }} for run ${{ steps.answer.output.run_id }}: ${{ steps.answer.output.justification }}"
"""


def test_a_playbook_records_the_answer(slack: SlackMock, config: Config, host: Any, ada: str,
                                       run_playbook: Any) -> None:
    nudge_playbook = """
name: nudge
steps:
  - id: nudge
    action: slack.send_nudge
    with: {email: "${{ event.email }}", file_name: "${{ event.file }}", policy: AI model policy}
"""
    sent = run_playbook(nudge_playbook, {"email": "ada@example.com", "file": "m.safetensors"},
                        config=config, host=host, run_id="run-first")
    out = sent["steps"]["nudge"]["output"]
    body, headers = slack.click(out["channel"], out["ts"], "business_reason", ada,
                                justification="Evaluating it for the platform team")
    record = run_playbook(RECORD_ANSWER, {"body": body, "headers": headers}, config=config,
                          host=host)

    assert record["status"] == "succeeded"
    answer = record["steps"]["answer"]["output"]
    assert (answer["run_id"], answer["step_id"], answer["choice"]) == (
        "run-first", "nudge", "business_reason")
    soc = record["steps"]["tell_soc"]["output"]["channel"]
    assert slack.messages(soc)[-1]["text"] == (
        f"{ada} answered business_reason for run run-first: Evaluating it for the platform team")


def test_a_forged_answer_fails_the_step_without_retries(slack: SlackMock, config: Config,
                                                        host: Any, ada: str,
                                                        run_playbook: Any, call: Any) -> None:
    sent = call(send_nudge, NUDGE, config)
    body, headers = slack.click(sent["channel"], sent["ts"], "mistake", ada)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    record = run_playbook(RECORD_ANSWER, {"body": body, "headers": headers}, config=config,
                          host=host)

    step = record["steps"]["answer"]
    assert record["status"] == "failed" and step["status"] == "failed"
    assert step["attempts"] == 1 and "signature does not match" in step["error"]
    assert record["steps"]["tell_soc"]["status"] == "skipped"
    assert slack.signing_secret not in json.dumps(record)


def _payload_of(body: str) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body)["payload"][0]
