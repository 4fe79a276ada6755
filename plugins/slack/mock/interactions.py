"""Interactivity requests as Slack sends them to an app's Request URL, and the mock's helpers
that build them (`click`, `submit_view`).

The body is `application/x-www-form-urlencoded` with one field, `payload`, holding JSON; the
headers carry `X-Slack-Request-Timestamp` and `X-Slack-Signature` (see signing.py). Payload
fields follow https://docs.slack.dev/reference/interaction-payloads/block_actions-payload and
the view_submission reference.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from crownguard.plugins.slack.blocks import (
    ACTION_CHOICES,
    CHOICE_ACTION,
    CHOICE_BLOCK,
    JUSTIFICATION_ACTION,
    JUSTIFICATION_BLOCK,
)
from crownguard.plugins.slack.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    compute_signature,
)

from .base import SlackMockBase


def _user(workspace: SlackMockBase, user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "username": user["name"], "name": user["name"],
            "team_id": workspace.TEAM_ID}


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**13)}.{secrets.token_hex(16)}"


def block_actions_payload(workspace: SlackMockBase, user: dict[str, Any], channel: str,
                          message: dict[str, Any], choice: str,
                          justification: str | None) -> dict[str, Any]:
    """The payload of a click on the nudge button for `choice` in `message`."""
    action_id = next(a for a, c in ACTION_CHOICES.items() if c == choice)
    button: dict[str, Any] | None = None
    block_id: str | None = None
    state: dict[str, Any] = {}
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            button = next((e for e in block.get("elements", [])
                           if e.get("action_id") == action_id), button)
            block_id = block.get("block_id")
        if block.get("type") == "input":
            element = block.get("element") or {}
            state[block.get("block_id")] = {element.get("action_id"): {
                "type": element.get("type"),
                "value": justification if block.get("block_id") == JUSTIFICATION_BLOCK
                and element.get("action_id") == JUSTIFICATION_ACTION else None}}
    if button is None:
        raise LookupError(f"the message has no '{action_id}' button")
    now = time.time()
    public_message = {k: v for k, v in message.items() if k != "metadata"}
    return {
        "type": "block_actions",
        "user": _user(workspace, user),
        "api_app_id": workspace.APP_ID,
        "token": "verification-token-deprecated",
        "container": {"type": "message", "message_ts": message["ts"], "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": _trigger_id(),
        "team": {"id": workspace.TEAM_ID, "domain": workspace.TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D")
                    else "channel"},
        "message": public_message,
        "state": {"values": state},
        "response_url": f"https://hooks.slack.com/actions/{workspace.TEAM_ID}/"
                        f"{secrets.randbelow(10**12)}/{secrets.token_urlsafe(18)}",
        "actions": [{"action_id": action_id, "block_id": block_id, "text": button["text"],
                     "value": button["value"], "style": button.get("style"), "type": "button",
                     "action_ts": f"{now:.6f}"}],
    }


def view_submission_payload(workspace: SlackMockBase, user: dict[str, Any], private_metadata: str,
                            justification: str | None, choice: str | None) -> dict[str, Any]:
    """The payload of a modal submitted with a justification input (and a choice radio)."""
    values: dict[str, Any] = {JUSTIFICATION_BLOCK: {JUSTIFICATION_ACTION: {
        "type": "plain_text_input", "value": justification}}}
    if choice is not None:
        values[CHOICE_BLOCK] = {CHOICE_ACTION: {"type": "radio_buttons", "selected_option": {
            "text": {"type": "plain_text", "text": choice}, "value": choice}}}
    view_id = "V0" + secrets.token_hex(4).upper()
    return {
        "type": "view_submission",
        "team": {"id": workspace.TEAM_ID, "domain": workspace.TEAM_DOMAIN},
        "user": _user(workspace, user),
        "api_app_id": workspace.APP_ID,
        "token": "verification-token-deprecated",
        "trigger_id": _trigger_id(),
        "view": {"id": view_id, "team_id": workspace.TEAM_ID, "type": "modal",
                 "callback_id": "crownguard_justification", "private_metadata": private_metadata,
                 "blocks": [], "state": {"values": values}, "hash": secrets.token_hex(8),
                 "app_id": workspace.APP_ID, "bot_id": workspace.BOT_ID},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def signed_request(payload: dict[str, Any], signing_secret: str,
                   timestamp: int | None = None) -> tuple[str, dict[str, str]]:
    """(body, headers) of the request Slack POSTs for `payload`."""
    body = urlencode({"payload": json.dumps(payload)})
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: compute_signature(signing_secret, stamp, body.encode()),
    }


class InteractionHelpers(SlackMockBase):
    """What Slack POSTs to the app when a person answers a nudge."""

    def click(self, channel: str, ts: str, choice: str, user_id: str, *,
              justification: str | None = None,
              timestamp: int | None = None) -> tuple[str, dict[str, str]]:
        """The signed block_actions request Slack sends when `user_id` presses a nudge button
        (`choice`: mistake or business_reason) after typing `justification`."""
        with self.state_lock:
            message = next((m for m in self.conversations[channel]["messages"]
                            if m["ts"] == ts), None)
            if message is None:
                raise LookupError(f"no message {ts} in {channel}")
            payload = block_actions_payload(self, self.users[user_id], channel, message,
                                            choice, justification)
        return signed_request(payload, self.signing_secret, timestamp)

    def submit_view(self, private_metadata: str, user_id: str, *,
                    justification: str | None = None, choice: str | None = None,
                    timestamp: int | None = None) -> tuple[str, dict[str, str]]:
        """The signed view_submission request for a modal carrying `private_metadata`."""
        payload = view_submission_payload(self, self.users[user_id], private_metadata,
                                          justification, choice)
        return signed_request(payload, self.signing_secret, timestamp)
