"""The app's own messages, posted once: each carries metadata naming its dedupe key, run and
step, and a repeat of the step finds it in the conversation's history instead of posting again.
"""

from __future__ import annotations

import re
import time
from typing import Any

from crownguard.engine import ActionContext, unquote, unquote_value
from crownguard.plugins._nudge import escape_mrkdwn, render_nudge
from crownguard.plugins.slack.blocks import nudge_blocks
from crownguard.plugins.slack.client import SlackClient
from crownguard.plugins.slack.schemas import CHANNEL_ID_PATTERN, DEFAULT_WINDOW_HOURS

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


def nudge(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """The employee's nudge in their DM: found there, or posted with the answer buttons."""
    content = render_nudge(inputs, ctx.run_context)  # bad inputs fail before any connection
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


def post(ctx: ActionContext, client: SlackClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """The step's message in a channel (id or #name): found there, or posted."""
    channel = inputs["channel"]
    if not CHANNEL_ID.match(channel):
        channel = client.channel_id(channel)
    key = inputs.get("dedupe_key") or ctx.idempotency_key
    found = _existing(client, channel, MESSAGE_EVENT, key, inputs)
    if found is not None:
        return {"channel": channel, "ts": str(found.get("ts")), "changed": False}
    # Values a step interpolated are quoted (crownguard.engine.unquote): literal text here.
    text = (unquote(inputs["text"], escape_mrkdwn) if inputs.get("allow_markup")
            else escape_mrkdwn(unquote(inputs["text"])))
    blocks = unquote_value(inputs.get("blocks"), escape_mrkdwn)
    posted = client.post_message(channel, text=text, blocks=blocks,
                                 metadata=_metadata(MESSAGE_EVENT, key, ctx),
                                 thread_ts=inputs.get("thread_ts"))
    return {"channel": posted["channel"], "ts": posted["ts"], "changed": True}


# Undo never deletes what the SOC was told: the message stays, marked as retracted.
RETRACTED = ":no_entry_sign: *Retracted by crownguard undo*"
MAX_TEXT = 40000


def retract(ctx: ActionContext, client: SlackClient, inputs: dict[str, Any]) -> dict[str, Any]:
    """Mark the app's message as retracted by this undo run, keeping its text and blocks
    below the note (chat.update); `changed` is false when it is marked already or gone."""
    channel, ts = inputs["channel"], inputs["ts"]
    result = {"channel": channel, "ts": ts}
    message = client.message(channel, ts)
    text = str((message or {}).get("text") or "")
    if message is None or text.startswith(RETRACTED):
        return {**result, "changed": False}
    note = (f"{RETRACTED} (undo run {ctx.run_id}): the automatic response this message "
            "reported was undone.")
    quoted = "\n".join(f"> {line}" for line in text.splitlines()) if text else ""
    new_text = f"{note}\n{quoted}" if quoted else note
    if len(new_text) > MAX_TEXT:
        new_text = new_text[:MAX_TEXT - 1] + "…"
    blocks = message.get("blocks")
    if isinstance(blocks, list) and blocks:
        blocks = [{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]},
                  *blocks[:49]]
    else:
        blocks = None
    client.update_message(channel, ts, text=new_text, blocks=blocks)
    return {**result, "changed": True}
