"""teams.send_message against the Teams webhook mock: Workflows and classic connector URLs,
error classes, retries, escaping, idempotent repeats, secrets and a playbook run."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

import crownguard.plugins.teams as teams_plugin
from crownguard.engine import (
    AuthError,
    BadResponse,
    Config,
    ConflictError,
    InputError,
    NotFoundError,
    RateLimited,
    ServerError,
)
from crownguard.plugins.teams.actions import send_message
from crownguard.plugins.teams.mock import TeamsMock

MESSAGE = {"title": "Model left through a personal drive",
           "text": "llama-ft-q4.safetensors was copied to a personal Google Drive.",
           "facts": [{"title": "Employee", "value": "ada@example.com"},
                     {"title": "Risk", "value": "82"}],
           "links": [{"title": "Open the case", "url": "https://soc.example/case/IR-7"}],
           "style": "attention"}


@pytest.fixture
def teams(mock_server: Any) -> TeamsMock:
    return mock_server(TeamsMock)


@pytest.fixture
def host(isolated_host: Any) -> Any:
    return isolated_host(teams_plugin, name="teams")


@pytest.fixture
def make_config(crownguard_config: Any, host: Any, teams: TeamsMock) -> Any:
    def make(url: str | None = None, **more: Any) -> Config:
        connections = {"teams": {"webhook_url": url or teams.workflow_url()}, **more}
        return crownguard_config(connections, host=host)

    return make


@pytest.fixture
def call(call_action: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """send_message called the way the runner calls it (the step is `tell_soc` unless told)."""

    def run(inputs: dict[str, Any], config: Config, *, step_id: str = "tell_soc") -> dict[str, Any]:
        output: dict[str, Any] = call_action(send_message, inputs, config, step_id=step_id,
                                             idempotency_key=f"key-{step_id}")
        return output

    return run


def test_adaptive_card_through_a_workflows_webhook(teams: TeamsMock, make_config: Any,
                                                   call: Any) -> None:
    out = call(MESSAGE, make_config())

    assert out == {"status_code": 202, "kind": "workflows", "changed": True}
    [request] = teams.calls_to("POST")
    assert request.arg("sig") == teams.sig and request.arg("api-version") == "2016-06-01"
    body = request.json
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, text, facts = card["body"]
    assert title["text"] == MESSAGE["title"] and title["color"] == "Attention"
    assert text["text"] == "llama-ft-q4.safetensors was copied to a personal Google Drive."
    assert facts["facts"] == [{"title": "Employee", "value": "ada@example.com"},
                              {"title": "Risk", "value": "82"}]
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the case",
                                "url": "https://soc.example/case/IR-7"}]
    assert [r["status"] for r in teams.runs] == ["Succeeded"] and teams.channel == [card]


def test_repeat_of_the_same_step_is_not_sent_twice(teams: TeamsMock, make_config: Any,
                                                   call: Any) -> None:
    config = make_config()
    first = call(MESSAGE, config)
    again = call(MESSAGE, config)
    other = call(MESSAGE, config, step_id="another_step")

    assert first["changed"] is True and again == {**first, "changed": False}
    assert other["changed"] is True
    assert len(teams.runs) == 2


def test_markdown_from_events_is_escaped(teams: TeamsMock, make_config: Any, call: Any) -> None:
    text = "[click me](https://evil.example) *now* `x`_y_"
    call({"text": text, "facts": [{"title": "File", "value": "[a](b)"}]}, make_config())
    call({"text": text, "allow_markup": True}, make_config(), step_id="marked")

    escaped, marked = (c["body"][0]["text"] for c in teams.channel)
    assert escaped == r"\[click me\]\(https://evil.example\) \*now\* \`x\`\_y\_"
    assert teams.channel[0]["body"][1]["facts"][0]["value"] == r"\[a\]\(b\)"
    assert marked == text


def test_classic_incoming_webhook(teams: TeamsMock, make_config: Any, call: Any) -> None:
    out = call(MESSAGE, make_config(teams.connector_url()))
    assert out == {"status_code": 200, "kind": "connector", "changed": True}
    assert len(teams.channel) == 1


@pytest.mark.parametrize(("status", "error"), [(429, RateLimited), (500, ServerError),
                                               (413, ConflictError), (400, ConflictError)])
def test_connector_failures_hidden_behind_200(teams: TeamsMock, make_config: Any, status: int,
                                              error: type[Exception], call: Any) -> None:
    teams.fail_connector_with(status)
    with pytest.raises(error) as caught:
        call(MESSAGE, make_config(teams.connector_url()))
    assert f"HTTP {status} behind a 200 answer" in str(caught.value)
    assert teams.channel == []
    if status == 413:
        assert "too large" in str(caught.value)


def test_wrong_signature_is_a_clear_auth_error(teams: TeamsMock, make_config: Any,
                                               call: Any) -> None:
    wrong = teams.workflow_url(sig="c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc")
    with pytest.raises(AuthError) as caught:
        call(MESSAGE, make_config(wrong))
    error = caught.value
    assert (error.vendor, error.operation, error.status) == ("teams", "post to Workflows webhook",
                                                             401)
    assert "DirectApiInvalidAuthorizationSignature" in str(error)
    assert "check the connection's credentials" in str(error)
    assert "c2lnbmF0dXJlLXRoYXQtaXMtd3Jvbmc" not in str(error) and "/workflows/" not in str(error)


def test_missing_signature(teams: TeamsMock, make_config: Any, call: Any) -> None:
    url = teams.workflow_url().split("&sig=")[0]
    with pytest.raises(AuthError, match="DirectApiAuthorizationRequired"):
        call(MESSAGE, make_config(url))


def test_unknown_workflow_is_not_found(teams: TeamsMock, make_config: Any, call: Any) -> None:
    url = teams.workflow_url().replace(teams.workflow_id, "0" * 32)
    with pytest.raises(NotFoundError, match="WorkflowNotFound"):
        call(MESSAGE, make_config(url))


def test_unreadable_connector_answer_is_a_bad_response(teams: TeamsMock,
                                                      make_config: Any, call: Any) -> None:
    teams.inject("malformed", path="/webhookb2/{g}/IncomingWebhook/{h}/{o}")
    with pytest.raises(BadResponse, match="unexpected answer"):
        call(MESSAGE, make_config(teams.connector_url()))


def test_message_over_the_size_limit_is_refused_before_sending(teams: TeamsMock,
                                                               make_config: Any, call: Any) -> None:
    facts = [{"title": f"f{n}", "value": "x" * 2000} for n in range(20)]
    with pytest.raises(InputError, match="28672"):
        call({"text": "big", "facts": facts}, make_config())
    assert teams.calls == []


def test_the_flow_run_fails_later_for_a_card_it_cannot_post(teams: TeamsMock) -> None:
    answer = requests.post(teams.workflow_url(), json={"type": "message", "attachments": [
        {"contentType": "application/json", "content": {}}]}, timeout=5)
    assert answer.status_code == 202 and answer.headers["x-ms-workflow-run-id"]
    assert teams.runs[-1]["status"] == "Failed" and teams.channel == []


PLAYBOOK = """
name: teams-soc
steps:
  - id: tell_soc
    action: teams.send_message
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    with:
      title: "Model left: ${{ event.file }}"
      text: "${{ event.user }} moved ${{ event.file }}"
  - id: tell_legal
    action: teams.send_message
    needs: [tell_soc]
    with: {connection: teams_legal, text: "FYI ${{ event.user }}"}
"""
EVENT = {"user": "ada@example.com", "file": "llama-ft-q4.safetensors"}


def test_playbook_retries_after_429_with_retry_after_and_uses_two_channels(
        teams: TeamsMock, make_config: Any, host: Any, run_playbook: Any) -> None:
    teams.inject("status", status=429, retry_after=1, path=f"/workflows/{teams.workflow_id}"
                 "/triggers/manual/paths/invoke")
    config = make_config(teams_legal={"type": "teams", "webhook_url": teams.connector_url()})
    events: list[dict[str, Any]] = []
    record = run_playbook(PLAYBOOK, EVENT, config=config, host=host, journal=events.append)

    assert record["status"] == "succeeded"
    assert record["steps"]["tell_soc"]["attempts"] == 2
    [failed] = [e for e in events if e["type"] == "attempt_failed"]
    assert failed["error_type"] == "RateLimited" and failed["retry_in"] >= 1.0
    assert "WorkflowRequestsThrottled" in failed["error"]
    assert record["steps"]["tell_legal"]["output"]["kind"] == "connector"
    assert [c["body"][0]["text"] for c in teams.channel] == [
        "Model left: llama-ft-q4.safetensors", "FYI ada@example.com"]
    # Neither webhook URL nor its signature reaches the record or the journal.
    text = json.dumps([record, events])
    for secret in (teams.sig, teams.workflow_id, teams.connector[1], teams.connector_url()):
        assert secret not in text
