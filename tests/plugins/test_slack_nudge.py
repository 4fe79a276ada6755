"""The slack plugin's sending actions against the Slack mock: nudge, SOC message, delete, the
error classes Slack has, pagination, token rotation, and playbooks end to end (the faults
every vendor shares are in test_conformance.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import crownguard.plugins.slack as slack_plugin
from crownguard.engine import (
    AuthError,
    Config,
    ConflictError,
    NotFoundError,
    RateLimited,
    ServerError,
)
from crownguard.plugins.slack.actions import (
    delete_message,
    post_message,
    retract_message,
    send_direct_message,
    send_nudge,
)
from crownguard.plugins.slack.mock import ALL_SCOPES, SlackMock

NUDGE = {"email": "ada@example.com", "file_name": "llama-ft-q4.safetensors",
         "policy": "AI model handling policy", "destination": "a personal Google Drive"}


@pytest.fixture
def slack(mock_server: Any) -> SlackMock:
    return mock_server(SlackMock)


@pytest.fixture
def host(isolated_host: Any) -> Any:
    return isolated_host(slack_plugin, name="slack")


@pytest.fixture
def make_config(crownguard_config: Any, host: Any, slack: SlackMock) -> Any:
    def make(**overrides: Any) -> Config:
        settings = {**slack.connection_settings(), **overrides}
        return crownguard_config({"slack": settings}, host=host)

    return make


@pytest.fixture
def config(make_config: Any) -> Config:
    return make_config()


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


def blocks_of(slack: SlackMock, channel: str, ts: str) -> list[dict[str, Any]]:
    message = next(m for m in slack.messages(channel) if m["ts"] == ts)
    return message["blocks"]


# --- send_nudge ---------------------------------------------------------------------------------


def test_send_nudge_direct_messages_the_employee_with_buttons(slack: SlackMock, config: Config,
                                                              ada: str, call: Any) -> None:
    out = call(send_nudge, NUDGE, config, run_id="run-42")

    assert out["changed"] is True and out["user_id"] == ada and out["language"] == "en"
    assert out["channel"] == slack.dm_of(ada)
    [message] = slack.messages(out["channel"])
    assert message["text"] == "A quick note about llama-ft-q4.safetensors"
    section_text = " ".join(b["text"]["text"] for b in message["blocks"]
                            if b["type"] == "section")
    assert "llama-ft-q4.safetensors" in section_text and "AI model handling policy" in section_text
    assert "a personal Google Drive" in section_text
    input_block = next(b for b in message["blocks"] if b["type"] == "input")
    assert input_block["block_id"] == "crownguard_justification" and input_block["optional"]
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["It was a mistake, I removed it",
                                                    "I have a business reason"]
    values = [json.loads(b["value"]) for b in buttons]
    assert values == [{"v": 1, "run_id": "run-42", "step_id": "nudge", "choice": "mistake"},
                      {"v": 1, "run_id": "run-42", "step_id": "nudge",
                       "choice": "business_reason"}]
    assert message["metadata"] == {"event_type": "crownguard_nudge", "event_payload": {
        "dedupe_key": "key-run-42-nudge", "run_id": "run-42", "step_id": "nudge"}}
    # The calls Slack's docs describe, in order, with a bearer token and JSON bodies.
    lookup = slack.calls_to("GET", "/api/users.lookupByEmail")[0]
    assert lookup.arg("email") == "ada@example.com"
    assert lookup.headers["Authorization"] == f"Bearer {slack.bot_token}"
    opened = slack.calls_to("POST", "/api/conversations.open")[0]
    assert opened.json == {"users": ada}
    posted = slack.calls_to("POST", "/api/chat.postMessage")[0]
    assert posted.headers["Content-Type"] == "application/json; charset=utf-8"


def test_send_nudge_repeat_is_idempotent(slack: SlackMock, config: Config, ada: str,
                                         call: Any) -> None:
    first = call(send_nudge, NUDGE, config)
    again = call(send_nudge, NUDGE, config)

    assert again == {**first, "changed": False}
    assert len(slack.messages(first["channel"])) == 1
    assert len(slack.calls_to("POST", "/api/chat.postMessage")) == 1
    # Another step (another idempotency key) is a new nudge.
    other = call(send_nudge, NUDGE, config, step_id="second_nudge")
    assert other["changed"] is True and len(slack.messages(first["channel"])) == 2


def test_send_nudge_by_user_id_in_german_without_buttons(slack: SlackMock, config: Config,
                                                         ada: str, call: Any) -> None:
    inputs = {**{k: v for k, v in NUDGE.items() if k != "email"}, "user_id": ada,
              "language": "de-DE", "employee_name": "Ada", "ask_justification": False}
    out = call(send_nudge, inputs, config)

    assert out["language"] == "de" and out["asked_justification"] is False
    blocks = blocks_of(slack, out["channel"], out["ts"])
    assert {b["type"] for b in blocks} == {"section"}
    assert blocks[0]["text"]["text"].startswith("Hallo Ada,")
    assert not slack.calls_to("GET", "/api/users.lookupByEmail")


def test_send_nudge_escapes_event_values_for_slack(slack: SlackMock, config: Config,
                                                   ada: str, call: Any) -> None:
    inputs = {**NUDGE, "file_name": "<!channel> & <https://evil.example|click>.bin"}
    out = call(send_nudge, inputs, config)

    text = blocks_of(slack, out["channel"], out["ts"])[0]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;.bin" in text
    assert "<!channel>" not in text


def test_send_nudge_reply_step_names_the_step_that_waits(slack: SlackMock, config: Config,
                                                         ada: str, call: Any) -> None:
    out = call(send_nudge, {**NUDGE, "reply_step": "await_answer"}, config, run_id="r9")

    buttons = next(b for b in blocks_of(slack, out["channel"], out["ts"])
                   if b["type"] == "actions")["elements"]
    assert {json.loads(b["value"])["step_id"] for b in buttons} == {"await_answer"}


# --- send_direct_message -------------------------------------------------------------------------


def test_send_direct_message_finds_the_person_escapes_and_is_idempotent(
        slack: SlackMock, config: Config, ada: str, call: Any) -> None:
    inputs = {"email": "ada@example.com", "text": "Your request <!here> for *fraud-model*"}
    out = call(send_direct_message, inputs, config, step_id="confirm")
    again = call(send_direct_message, inputs, config, step_id="confirm")

    assert out["channel"] == slack.dm_of(ada) and out["changed"] is True
    assert again == {**out, "changed": False}
    [message] = slack.messages(out["channel"])
    assert message["text"] == "Your request &lt;!here&gt; for *fraud-model*"
    assert slack.calls_to("GET", "/api/users.lookupByEmail")[0].arg("email") == \
        "ada@example.com"


def test_send_direct_message_with_approval_buttons_names_run_and_step(
        slack: SlackMock, config: Config, ada: str, call: Any) -> None:
    out = call(send_direct_message, {"email": "ada@example.com", "text": "Grant <b>?",
                                     "approval": {"run_id": "run-9", "step_id": "decide"}},
               config, step_id="ask")
    blocks = blocks_of(slack, out["channel"], out["ts"])
    section = next(b for b in blocks if b["type"] == "section")["text"]["text"]
    assert section == "Grant &lt;b&gt;?"  # escaped in the blocks as in the text
    buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
    values = [json.loads(b["value"]) for b in buttons]
    assert {(v["run_id"], v["step_id"]) for v in values} == {("run-9", "decide")}
    assert sorted(v["choice"] for v in values) == ["approve", "deny"]


def test_send_direct_message_to_an_unknown_person_is_not_found(
        slack: SlackMock, config: Config, call: Any) -> None:
    with pytest.raises(NotFoundError):
        call(send_direct_message, {"email": "nobody@example.com", "text": "hi"}, config)
    assert not slack.calls_to("POST", "/api/chat.postMessage")


# --- post_message and delete_message ------------------------------------------------------------


def test_post_message_by_name_escapes_text_and_is_idempotent(slack: SlackMock,
                                                             config: Config, call: Any) -> None:
    soc = next(c for c in slack.conversations.values() if c["name"] == "soc-alerts")["id"]
    inputs = {"channel": "#soc-alerts", "text": "Nudged <!channel> about *model.bin*"}
    out = call(post_message, inputs, config, step_id="tell_soc")
    again = call(post_message, inputs, config, step_id="tell_soc")

    assert out["channel"] == soc and out["changed"] is True
    assert again == {**out, "changed": False}
    [message] = slack.messages(soc)
    assert message["text"] == "Nudged &lt;!channel&gt; about *model.bin*"
    marked = call(post_message, {"channel": soc, "text": "<https://soc.example/case/1|case 1>",
                                 "allow_markup": True}, config, step_id="link")
    assert slack.messages(soc)[-1]["text"] == "<https://soc.example/case/1|case 1>"
    assert marked["changed"] is True


def test_post_message_where_the_app_is_not_a_member(slack: SlackMock, config: Config,
                                                    call: Any) -> None:
    closed = slack.add_channel("legal", member=False)
    with pytest.raises(ConflictError) as caught:
        call(post_message, {"channel": closed, "text": "hello", "dedupe": False}, config)
    assert "not_in_channel" in str(caught.value) and "invite the app" in str(caught.value)


def test_post_message_unknown_channel_name(slack: SlackMock, config: Config, call: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        call(post_message, {"channel": "#nowhere", "text": "hello"}, config)
    assert "#nowhere" in str(caught.value)


def test_undo_of_a_soc_post_retracts_it_and_never_deletes_it(slack: SlackMock, config: Config,
                                                              call: Any) -> None:
    assert post_message.undo == "slack.retract_message"  # a SOC post is never deleted
    assert send_nudge.undo == "slack.delete_message"  # the employee's wrong nudge may go
    sent = call(post_message, {"channel": "#soc-alerts", "text": "Contain failed\nFinish it"},
                config, step_id="escalate")
    first = call(retract_message, {"channel": sent["channel"], "ts": sent["ts"]}, config,
                 run_id="undo-run-7", step_id="undo_escalate")
    again = call(retract_message, {"channel": sent["channel"], "ts": sent["ts"]}, config,
                 run_id="undo-run-7", step_id="undo_escalate")

    assert first == {"channel": sent["channel"], "ts": sent["ts"], "changed": True}
    assert again["changed"] is False
    [message] = slack.messages(sent["channel"])  # still there, one message, marked
    assert message["ts"] == sent["ts"] and "edited" in message
    assert message["text"] == (":no_entry_sign: *Retracted by crownguard undo* (undo run "
                               "undo-run-7): the automatic response this message reported "
                               "was undone.\n> Contain failed\n> Finish it")
    assert slack.calls_to("POST", "/api/chat.delete") == []


def test_retracting_keeps_a_messages_blocks_below_the_note(slack: SlackMock, config: Config,
                                                           call: Any) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Contain failed*"}}]
    sent = call(post_message, {"channel": "#soc-alerts", "text": "Contain failed",
                               "blocks": blocks}, config, step_id="escalate")
    call(retract_message, {"channel": sent["channel"], "ts": sent["ts"]}, config,
         run_id="undo-run-8")
    kept = blocks_of(slack, sent["channel"], sent["ts"])
    assert kept[0]["type"] == "context" and "undo-run-8" in kept[0]["elements"][0]["text"]
    assert kept[1:] == blocks


def test_retracting_a_message_that_is_gone_changes_nothing(slack: SlackMock, config: Config,
                                                           call: Any) -> None:
    sent = call(post_message, {"channel": "#soc-alerts", "text": "hello"}, config)
    call(delete_message, {"channel": sent["channel"], "ts": sent["ts"]}, config)
    gone = call(retract_message, {"channel": sent["channel"], "ts": sent["ts"]}, config)
    assert gone["changed"] is False and slack.calls_to("POST", "/api/chat.update") == []


def test_chat_update_follows_slack_on_text_and_blocks(slack: SlackMock, config: Config,
                                                      call: Any) -> None:
    """Text without blocks drops the blocks; blocks alone keep the text; neither is no_text;
    another's message is cant_update_message (as Slack's chat.update documents)."""
    from crownguard.plugins.slack.client import SlackClient

    client = SlackClient(config.connections.get("slack"))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "b"}}]
    sent = call(post_message, {"channel": "#soc-alerts", "text": "t", "blocks": blocks},
                config)
    channel, ts = sent["channel"], sent["ts"]
    client.call("chat.update", body={"channel": channel, "ts": ts, "blocks": blocks * 2})
    assert slack.messages(channel)[0]["text"] == "t"
    assert len(slack.messages(channel)[0]["blocks"]) == 2
    client.call("chat.update", body={"channel": channel, "ts": ts, "text": "new"})
    assert "blocks" not in slack.messages(channel)[0]
    with pytest.raises(ConflictError, match="no_text"):
        client.call("chat.update", body={"channel": channel, "ts": ts})
    slack.conversations[channel]["messages"][0]["bot_id"] = "B0SOMEONE"
    with pytest.raises(ConflictError, match="cant_update_message"):
        client.update_message(channel, ts, text="mine now")


def test_delete_message_undoes_a_nudge_and_repeats_cleanly(slack: SlackMock, config: Config,
                                                           ada: str, call: Any) -> None:
    sent = call(send_nudge, NUDGE, config)
    first = call(delete_message, {"channel": sent["channel"], "ts": sent["ts"]}, config)
    again = call(delete_message, {"channel": sent["channel"], "ts": sent["ts"]}, config)

    assert first["changed"] is True and again["changed"] is False
    assert slack.messages(sent["channel"]) == []


# --- errors only this vendor has (the shared ones: test_conformance.py) --------------------------


def test_missing_scope_names_the_scope(slack: SlackMock, config: Config, ada: str,
                                       call: Any) -> None:
    slack.set_scopes(ALL_SCOPES - {"im:write"})
    with pytest.raises(AuthError) as caught:
        call(send_nudge, NUDGE, config)
    assert caught.value.operation == "conversations.open"
    assert "missing_scope" in str(caught.value) and "'im:write'" in str(caught.value)


def test_unknown_user_is_not_found(slack: SlackMock, config: Config, call: Any) -> None:
    with pytest.raises(NotFoundError) as caught:
        call(send_nudge, {**NUDGE, "email": "nobody@example.com"}, config)
    assert "users_not_found" in str(caught.value)
    assert caught.value.retryable is False


def test_deactivated_user_is_refused(slack: SlackMock, config: Config, call: Any) -> None:
    gone = slack.add_user("gone@example.com", "Gone", deleted=True)
    with pytest.raises(ConflictError) as caught:
        call(send_nudge, {**NUDGE, "email": "gone@example.com"}, config)
    assert "user_disabled" in str(caught.value) and gone not in str(caught.value)


def test_ok_false_server_errors_are_retryable(slack: SlackMock, config: Config, ada: str,
                                              call: Any) -> None:
    slack.inject("status", status=200, body={"ok": False, "error": "fatal_error"},
                 path="/api/chat.postMessage")
    with pytest.raises(ServerError) as caught:
        call(send_nudge, NUDGE, config)
    assert caught.value.retryable is True


def test_unknown_method_answer_is_slacks(slack: SlackMock) -> None:
    import requests

    answer = requests.get(slack.base_url + "/api/chat.frobnicate", timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"ok": False, "error": "unknown_method",
                             "req_method": "chat.frobnicate"}


NUDGE_PLAYBOOK = """
name: slack-nudge
steps:
  - id: nudge
    action: slack.send_nudge
    retry: {max_attempts: 3, backoff_seconds: 0.01}
    with:
      email: "${{ event.actor.email }}"
      file_name: "${{ event.file.name }}"
      policy: AI model handling policy
      language: "${{ event.actor.language }}"
"""
EVENT = {"actor": {"email": "ada@example.com", "language": "fr"},
         "file": {"name": "llama-ft-q4.safetensors"}}


def test_429_body_is_slacks_ratelimited(slack: SlackMock, config: Config, ada: str,
                                        call: Any) -> None:
    slack.inject("status", status=429, retry_after=7, path="/api/users.lookupByEmail")
    with pytest.raises(RateLimited) as caught:
        call(send_nudge, NUDGE, config)
    assert caught.value.retry_after == 7 and caught.value.status == 429
    assert "ratelimited" in str(caught.value)


# --- pagination ----------------------------------------------------------------------------------


def test_dedupe_pages_through_conversation_history(slack: SlackMock, config: Config,
                                                   ada: str, call: Any) -> None:
    first = call(send_nudge, NUDGE, config)
    # 450 later messages push the nudge to the third page of 200.
    for n in range(450):
        slack.add_message(first["channel"], ada, f"chatter {n}")
    history_before = len(slack.calls_to("GET", "/api/conversations.history"))
    again = call(send_nudge, NUDGE, config)

    assert again["changed"] is False and again["ts"] == first["ts"]
    pages = slack.calls_to("GET", "/api/conversations.history")[history_before:]
    assert len(pages) == 3
    assert pages[0].arg("cursor") is None and pages[1].arg("cursor") and pages[2].arg("cursor")
    assert all(p.arg("include_all_metadata") == "true" for p in pages)


def test_channel_name_is_resolved_across_pages(slack: SlackMock, config: Config, call: Any) -> None:
    for n in range(260):
        slack.add_channel(f"team-{n:03d}")
    target = slack.add_channel("zz-ir-war-room")
    out = call(post_message, {"channel": "#zz-ir-war-room", "text": "hello"}, config)

    assert out["channel"] == target
    listing = slack.calls_to("GET", "/api/conversations.list")
    assert len(listing) == 2 and listing[1].arg("cursor")


# --- token rotation ------------------------------------------------------------------------------


def test_expired_rotating_token_is_refreshed_once(slack: SlackMock, make_config: Any,
                                                  ada: str, call: Any) -> None:
    rotation = slack.enable_token_rotation()
    config = make_config(**rotation)
    call(send_nudge, NUDGE, config, step_id="before")
    slack.expire_tokens()  # the 12-hour token runs out mid-run
    out = call(send_nudge, NUDGE, config, step_id="after")

    assert out["changed"] is True
    refreshes = slack.calls_to("POST", "/api/oauth.v2.access")
    assert len(refreshes) == 1
    assert refreshes[0].form["grant_type"] == "refresh_token"
    assert refreshes[0].form["refresh_token"] == rotation["refresh_token"]
    assert rotation["refresh_token"] not in slack.refresh_tokens  # used up: Slack revokes it
    # The expired token was sent once, then the new one.
    bearer = [c.headers.get("Authorization") for c in slack.calls
              if c.path == "/api/users.lookupByEmail"]
    assert bearer[0] == bearer[1] == f"Bearer {rotation['token']}" != bearer[2]


def test_expired_static_token_is_an_auth_error(slack: SlackMock, config: Config,
                                               ada: str, call: Any) -> None:
    slack.expire_tokens()
    with pytest.raises(AuthError) as caught:
        call(send_nudge, NUDGE, config)
    assert "token_expired" in str(caught.value)
    assert not slack.calls_to("POST", "/api/oauth.v2.access")


def test_rejected_refresh_is_an_auth_error(slack: SlackMock, make_config: Any, ada: str,
                                           call: Any) -> None:
    rotation = slack.enable_token_rotation()
    config = make_config(**{**rotation, "client_secret": "not-the-secret"})
    slack.expire_tokens()
    with pytest.raises(AuthError) as caught:
        call(send_nudge, NUDGE, config)
    assert "bad_client_secret" in str(caught.value)
    assert "not-the-secret" not in str(caught.value)


# --- playbooks end to end ------------------------------------------------------------------------


def test_playbook_nudges_and_tells_the_soc(slack: SlackMock, config: Config, host: Any,
                                           ada: str, run_playbook: Any) -> None:
    playbook = NUDGE_PLAYBOOK + """
  - id: tell_soc
    action: slack.post_message
    needs: [nudge]
    with:
      channel: "#soc-alerts"
      text: "Nudged ${{ event.actor.email }} about ${{ event.file.name }} (${{ steps.nudge.output.language }})"
"""
    record = run_playbook(playbook, EVENT, config=config, host=host, run_id="run-e2e")
    again = run_playbook(playbook, EVENT, config=config, host=host, run_id="run-e2e")

    assert record["status"] == "succeeded"
    assert record["steps"]["tell_soc"]["output"]["changed"] is True
    soc = record["steps"]["tell_soc"]["output"]["channel"]
    assert slack.messages(soc)[0]["text"] == (
        "Nudged ada@example.com about llama-ft-q4.safetensors (fr)")
    # Running the same run again (a resume) changes nothing at Slack.
    assert again["status"] == "succeeded"
    assert again["steps"]["nudge"]["output"]["changed"] is False
    assert again["steps"]["tell_soc"]["output"]["changed"] is False
    assert len(slack.messages(soc)) == 1


def test_playbook_authors_override_the_nudge_text(slack: SlackMock, config: Config, host: Any,
                                                  ada: str, run_playbook: Any,
                                                  tmp_path: Any) -> None:
    folder = tmp_path / "nudge-texts"
    (folder / "de").mkdir(parents=True)
    (folder / "body.mrkdwn").write_text("Hey {{ employee_name }}: *{{ file_name }}* ({{ team }})")
    (folder / "de" / "button_reason.txt").write_text("Ich brauche sie beruflich\n")
    playbook = NUDGE_PLAYBOOK + f"""      templates: "{folder}"
      employee_name: Ada
      values: {{team: "ML platform <3"}}
"""
    event = {**EVENT, "actor": {"email": "ada@example.com", "language": "de-AT"}}
    record = run_playbook(playbook, event, config=config, host=host)

    out = record["steps"]["nudge"]["output"]
    assert record["status"] == "succeeded" and out["language"] == "de"
    blocks = blocks_of(slack, out["channel"], out["ts"])
    assert blocks[0]["text"]["text"] == (
        "Hey Ada: *llama-ft-q4.safetensors* (ML platform &lt;3)")
    buttons = next(b for b in blocks if b["type"] == "actions")["elements"]
    # The author's German button, and the shipped German text for the one not overridden.
    assert [b["text"]["text"] for b in buttons] == ["Versehen, ich habe sie gelöscht",
                                                    "Ich brauche sie beruflich"]


def test_a_broken_override_fails_the_step_clearly(slack: SlackMock, config: Config, host: Any,
                                                  ada: str, run_playbook: Any,
                                                  tmp_path: Any) -> None:
    (tmp_path / "subject.txt").write_text("{{ event.file.name }}")
    playbook = NUDGE_PLAYBOOK + f"""      templates: "{tmp_path}"
"""
    record = run_playbook(playbook, EVENT, config=config, host=host)

    step = record["steps"]["nudge"]
    assert record["status"] == "failed" and step["attempts"] == 1
    assert "subject.txt" in step["error"] and "is not a placeholder" in step["error"]
    assert not slack.calls_to("POST", "/api/chat.postMessage")
