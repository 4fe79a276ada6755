"""slack.send_nudge, slack.post_message, slack.delete_message, slack.parse_interaction."""

from __future__ import annotations

import re
import time
from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, ConfigError, action
from crownguard.plugins._nudge import escape_mrkdwn, render_nudge
from crownguard.plugins.slack.blocks import nudge_blocks
from crownguard.plugins.slack.client import SlackClient
from crownguard.plugins.slack.interactions import answer_from_payload, payload_from_body
from crownguard.plugins.slack.schemas import (
    CHANNEL_ID_PATTERN,
    DEFAULT_WINDOW_HOURS,
    DELETE_MESSAGE_INPUT,
    DELETE_MESSAGE_OUTPUT,
    PARSE_INTERACTION_INPUT,
    PARSE_INTERACTION_OUTPUT,
    POST_MESSAGE_INPUT,
    POST_MESSAGE_OUTPUT,
    SEND_NUDGE_INPUT,
    SEND_NUDGE_OUTPUT,
)
from crownguard.plugins.slack.signing import MAX_AGE_SECONDS, verify_signature

NUDGE_EVENT = "crownguard_nudge"
MESSAGE_EVENT = "crownguard_message"
CHANNEL_ID = re.compile(CHANNEL_ID_PATTERN)


def _metadata(event_type: str, key: str, ctx: ActionContext,
              step_id: str | None = None) -> dict[str, Any]:
    """Message metadata: how a repeat finds the earlier message, and what posted it."""
    return {"event_type": event_type,
            "event_payload": {"dedupe_key": key, "run_id": ctx.run_id,
                              "step_id": step_id or ctx.step_id}}


def _existing(client: SlackClient, channel: str, event_type: str, key: str,
              inputs: dict[str, Any]) -> dict[str, Any] | None:
    if not inputs.get("dedupe", True):
        return None
    hours = float(inputs.get("dedupe_window_hours", DEFAULT_WINDOW_HOURS))
    return client.find_own_message(channel, event_type, key, time.time() - hours * 3600)


@action(
    "slack.send_nudge",
    side_effect=True,
    undo="slack.delete_message",
    undo_with={"channel": "${{ output.channel }}", "ts": "${{ output.ts }}"},
    connection="slack",
    retry=VENDOR_RETRY,
    input_schema=SEND_NUDGE_INPUT,
    output_schema=SEND_NUDGE_OUTPUT,
)
def send_nudge(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Send the employee a respectful direct message about a model file that moved.

    Finds the user by e-mail (users.lookupByEmail) unless user_id is given, opens the DM
    (conversations.open) and posts the nudge rendered from the templates in the employee's
    `language` (chat.postMessage). With ask_justification (default) the message ends with an
    optional text box and two buttons, "it was a mistake, I removed it" and "I have a business
    reason", whose values name this run and `reply_step`: slack.parse_interaction reads the
    answer back. `changed` is false when this step's nudge is already in the DM (found by its
    message metadata in conversations.history). Scopes: users:read.email, im:write,
    chat:write, im:history. Undo: slack.delete_message with the output's channel and ts.
    """
    content = render_nudge(inputs, ctx.run_context)
    client = ctx.client(SlackClient)
    user_id = inputs.get("user_id") or client.lookup_user_by_email(inputs["email"])["id"]
    channel = client.open_dm(user_id)
    ask = bool(inputs.get("ask_justification", True))
    reply_step = inputs.get("reply_step") or ctx.step_id
    key = inputs.get("dedupe_key") or ctx.idempotency_key
    result = {"user_id": user_id, "channel": channel, "language": content.language,
              "asked_justification": ask}
    found = _existing(client, channel, NUDGE_EVENT, key, inputs)
    if found is not None:
        return {**result, "ts": str(found.get("ts")), "changed": False}
    blocks = nudge_blocks(content, run_id=ctx.run_id if ask else None,
                          step_id=reply_step if ask else None)
    posted = client.post_message(channel, text=escape_mrkdwn(content.subject), blocks=blocks,
                                 metadata=_metadata(NUDGE_EVENT, key, ctx, reply_step))
    return {**result, "channel": posted["channel"], "ts": posted["ts"], "changed": True}


@action(
    "slack.post_message",
    side_effect=True,
    undo="slack.delete_message",
    undo_with={"channel": "${{ output.channel }}", "ts": "${{ output.ts }}"},
    connection="slack",
    retry=VENDOR_RETRY,
    input_schema=POST_MESSAGE_INPUT,
    output_schema=POST_MESSAGE_OUTPUT,
)
def post_message(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Post a message to a SOC channel.

    `channel` is an id or a #name (resolved with conversations.list). The text is escaped
    unless allow_markup is true; optional Block Kit `blocks` go as given. `changed` is false
    when this step already posted there (found by its message metadata in
    conversations.history). Scopes: chat:write, channels:read/groups:read for a #name,
    channels:history/groups:history for dedupe; the app must be in the channel. Undo:
    slack.delete_message.
    """
    client = ctx.client(SlackClient)
    channel = inputs["channel"]
    if not CHANNEL_ID.match(channel):
        channel = client.channel_id(channel)
    key = inputs.get("dedupe_key") or ctx.idempotency_key
    found = _existing(client, channel, MESSAGE_EVENT, key, inputs)
    if found is not None:
        return {"channel": channel, "ts": str(found.get("ts")), "changed": False}
    text = inputs["text"] if inputs.get("allow_markup") else escape_mrkdwn(inputs["text"])
    posted = client.post_message(channel, text=text, blocks=inputs.get("blocks"),
                                 metadata=_metadata(MESSAGE_EVENT, key, ctx),
                                 thread_ts=inputs.get("thread_ts"))
    return {"channel": posted["channel"], "ts": posted["ts"], "changed": True}


@action(
    "slack.delete_message",
    side_effect=True,
    connection="slack",
    retry=VENDOR_RETRY,
    input_schema=DELETE_MESSAGE_INPUT,
    output_schema=DELETE_MESSAGE_OUTPUT,
)
def delete_message(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Delete a message the app posted (the undo of send_nudge and post_message).

    Calls chat.delete; `changed` is false when the message is already gone. Scope: chat:write.
    No undo: a deleted message cannot be restored.
    """
    client = ctx.client(SlackClient)
    changed = client.delete_message(inputs["channel"], inputs["ts"])
    return {"channel": inputs["channel"], "ts": inputs["ts"], "changed": changed}


@action(
    "slack.parse_interaction",
    side_effect=False,
    connection="slack",
    input_schema=PARSE_INTERACTION_INPUT,
    output_schema=PARSE_INTERACTION_OUTPUT,
)
def parse_interaction(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Verify a Slack interactivity request and read the employee's answer from it.

    Checks X-Slack-Signature (v0 HMAC-SHA256 of "v0:{timestamp}:{body}" with the connection's
    signing_secret, constant-time compare) and that X-Slack-Request-Timestamp is within five
    minutes, then turns a block_actions (nudge button) or view_submission (modal whose
    private_metadata is the reference) payload into {run_id, step_id, user, choice,
    justification}. A wrong or stale signature fails with AuthError. Calls no Slack API.
    """
    connection = ctx.connection("slack")
    if connection.get("signing_secret") is None:
        raise ConfigError("connection 'slack' has no signing_secret to verify requests with")
    body = inputs["body"].encode("utf-8")
    verify_signature(connection.secret("signing_secret"), inputs["headers"], body,
                     max_age=inputs.get("max_age_seconds", MAX_AGE_SECONDS))
    return answer_from_payload(payload_from_body(body))
