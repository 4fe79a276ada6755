"""slack.send_nudge, slack.post_message, slack.retract_message, slack.delete_message,
slack.parse_interaction.

Thin: posting once lives in messages.py, reading an answer in signing.py and interactions.py."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, ConfigError, action, unquote
from crownguard.plugins._nudge import escape_mrkdwn
from crownguard.plugins.slack.blocks import approval_blocks
from crownguard.plugins.slack.client import SlackClient
from crownguard.plugins.slack.interactions import answer_from_payload, payload_from_body
from crownguard.plugins.slack.messages import nudge, post, retract
from crownguard.plugins.slack.schemas import (
    DELETE_MESSAGE_INPUT,
    DELETE_MESSAGE_OUTPUT,
    DIRECT_MESSAGE_INPUT,
    DIRECT_MESSAGE_OUTPUT,
    PARSE_INTERACTION_INPUT,
    PARSE_INTERACTION_OUTPUT,
    POST_MESSAGE_INPUT,
    POST_MESSAGE_OUTPUT,
    RETRACT_MESSAGE_INPUT,
    RETRACT_MESSAGE_OUTPUT,
    SEND_NUDGE_INPUT,
    SEND_NUDGE_OUTPUT,
)
from crownguard.plugins.slack.signing import MAX_AGE_SECONDS, verify_signature


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
    chat:write, im:history. Undo: slack.delete_message with the output's channel and ts:
    the nudge is a message to the employee, not a record of the SOC's (the journal and audit
    trail keep what was sent), and an undo is for a false positive, so the wrong nudge is
    taken out of the employee's DM rather than left there marked.
    """
    return nudge(ctx, inputs)


@action(
    "slack.post_message",
    side_effect=True,
    undo="slack.retract_message",
    undo_with={"channel": "${{ output.channel }}", "ts": "${{ output.ts }}"},
    connection="slack",
    retry=VENDOR_RETRY,
    markup=("text", "blocks"),
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
    slack.retract_message (the SOC's message stays, marked as retracted).
    """
    return post(ctx, ctx.client(SlackClient), inputs)


@action(
    "slack.send_direct_message",
    side_effect=True,
    undo="slack.delete_message",
    undo_with={"channel": "${{ output.channel }}", "ts": "${{ output.ts }}"},
    connection="slack",
    retry=VENDOR_RETRY,
    markup=("text", "blocks"),
    input_schema=DIRECT_MESSAGE_INPUT,
    output_schema=DIRECT_MESSAGE_OUTPUT,
)
def send_direct_message(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Send a person a direct message from the app, found by their e-mail address.

    users.lookupByEmail, conversations.open, then as slack.post_message in that DM (escaped
    text unless allow_markup, optional blocks, `changed: false` when this step's message is
    there already). With `approval`, the message ends with Approve and Deny buttons whose
    clicks answer that run id and step through the service's Slack endpoint. Scopes:
    users:read.email, im:write, chat:write, im:history. Undo: slack.delete_message.
    """
    client = ctx.client(SlackClient)
    channel = client.open_dm(client.lookup_user_by_email(inputs["email"])["id"])
    rest = {k: v for k, v in inputs.items() if k not in ("email", "approval")}
    approval = inputs.get("approval")
    if approval:  # the text goes into the blocks escaped, as post() escapes it
        rest["blocks"] = approval_blocks(escape_mrkdwn(unquote(inputs["text"])),
                                         approval["run_id"], approval["step_id"])
    return post(ctx, client, {**rest, "channel": channel})


@action(
    "slack.retract_message",
    side_effect=True,
    connection="slack",
    retry=VENDOR_RETRY,
    input_schema=RETRACT_MESSAGE_INPUT,
    output_schema=RETRACT_MESSAGE_OUTPUT,
)
def retract_message(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Mark a message the app posted as retracted by this undo run (the undo of post_message).

    Never deletes what the SOC was told: reads the message (conversations.history at its ts)
    and edits it (chat.update) to open with "Retracted by crownguard undo (undo run ID)",
    the original text quoted below and its blocks kept. `changed` is false when it is marked
    already or is gone. Scopes: chat:write, channels:history/groups:history. No undo.
    """
    return retract(ctx, ctx.client(SlackClient), inputs)


@action(
    "slack.delete_message",
    side_effect=True,
    connection="slack",
    retry=VENDOR_RETRY,
    input_schema=DELETE_MESSAGE_INPUT,
    output_schema=DELETE_MESSAGE_OUTPUT,
)
def delete_message(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Delete a message the app posted (the undo of send_nudge).

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


ACTIONS = (send_nudge, post_message, send_direct_message, retract_message, delete_message,
           parse_interaction)
