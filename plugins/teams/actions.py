"""teams.send_message."""

from __future__ import annotations

from typing import Any

from crownguard.engine import ActionContext, RetryPolicy, action
from crownguard.plugins._nudge import DELIVERIES
from crownguard.plugins.teams.cards import STYLES, message_card
from crownguard.plugins.teams.client import TeamsClient

VENDOR_RETRY = RetryPolicy(max_attempts=3, backoff_seconds=1)
_WEB_LINK = r"^https?://[^\s]+$"


@action(
    "teams.send_message",
    side_effect=True,
    connection="teams",
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 20000},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "facts": {"type": "array", "maxItems": 20, "items": {
                "type": "object", "additionalProperties": False, "required": ["title", "value"],
                "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 100},
                               "value": {"type": "string", "maxLength": 2000}}}},
            "links": {"type": "array", "maxItems": 6, "items": {
                "type": "object", "additionalProperties": False, "required": ["title", "url"],
                "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 100},
                               "url": {"type": "string", "pattern": _WEB_LINK}}}},
            "style": {"enum": sorted(STYLES), "default": "default"},
            "allow_markup": {"type": "boolean", "default": False,
                             "description": "Keep Markdown in text and fact values; by default "
                                            "it is escaped so event data cannot add links."},
            "connection": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$",
                           "default": "teams",
                           "description": "A connection of type teams (one per channel)."},
            "dedupe": {"type": "boolean", "default": True},
        },
    },
    output_schema={
        "type": "object",
        "required": ["changed", "status_code", "kind"],
        "properties": {"changed": {"type": "boolean"}, "status_code": {"type": "integer"},
                       "kind": {"enum": ["workflows", "connector"]}},
    },
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
