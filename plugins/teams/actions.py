"""teams.send_message."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, action
from crownguard.plugins._nudge import DELIVERIES
from crownguard.plugins.teams.cards import message_card
from crownguard.plugins.teams.client import TeamsClient
from crownguard.plugins.teams.schemas import SEND_MESSAGE_INPUT, SEND_MESSAGE_OUTPUT


@action(
    "teams.send_message",
    side_effect=True,
    connection="teams",
    retry=VENDOR_RETRY,
    markup=("text", "title", "facts"),
    input_schema=SEND_MESSAGE_INPUT,
    output_schema=SEND_MESSAGE_OUTPUT,
)
def send_message(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Post an Adaptive Card to a Teams channel through its webhook.

    The connection's webhook_url is a Workflows webhook ("When a Teams webhook request is
    received", 202 Accepted) or a classic incoming webhook (200 with "1"; its failures hidden
    behind 200 are detected). The card has an optional title, the text, facts and link buttons
    (Action.OpenUrl; webhook cards cannot collect answers). Neither webhook can be asked what
    it already received, so `changed` is false only for a repeat of this step in the same
    process (see the docs). No undo: a webhook post cannot be recalled.
    """
    name = inputs.get("connection") or "teams"
    client = ctx.client(TeamsClient, name)
    if inputs.get("dedupe", True):
        earlier = DELIVERIES.get(client.connection, ctx.idempotency_key)
        if earlier is not None:
            return {**earlier, "changed": False}
    payload = message_card(text=inputs["text"], title=inputs.get("title"),
                           facts=inputs.get("facts"), links=inputs.get("links"),
                           style=inputs.get("style", "default"),
                           allow_markup=bool(inputs.get("allow_markup")))
    status = client.post(payload)
    result = {"status_code": status, "kind": client.kind}
    DELIVERIES.record(client.connection, ctx.idempotency_key, result)
    return {**result, "changed": True}


ACTIONS = (send_message,)
