"""The service's Slack receiver (`POST /v1/slack/interactions`): `verify` checks and reads a
signed interaction at once (no Slack call: Slack wants its 200 within 3 s); `resolve`, in the
service's background, asks Slack who clicked and answers by their e-mail (identity.py), with
their Slack user id as an alias, as `crownguard slack-answer` does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crownguard.engine import ActionContext, BadResponse
from crownguard.plugins.slack.actions import parse_interaction
from crownguard.plugins.slack.blocks import DENYING_CHOICES
from crownguard.plugins.slack.client import SlackClient
from crownguard.plugins.slack.identity import answerer

NAME = "slack"


def _context(connections: Any) -> ActionContext:
    return ActionContext(run_id="slack-interaction", step_id="receive", attempt=1,
                         idempotency_key="slack-interaction", connections=connections)


def verify(connections: Any, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """The interaction's {run_id, step_id, user, choice, justification, ...}; AuthError when
    the signature is wrong or stale, BadResponse when the body is no nudge answer."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadResponse("the body is not UTF-8 form data", vendor="slack",
                          operation=parse_interaction.name) from None
    return dict(parse_interaction.func(_context(connections),
                                       {"body": text, "headers": dict(headers)}))


def resolve(connections: Any, parsed: Mapping[str, Any]) -> dict[str, Any]:
    """Who answered (users.info), and the answer to record."""
    ctx = _context(connections)
    who = answerer(ctx.client(SlackClient), str(parsed["user"]))
    comment = str(parsed["choice"]) + (f": {parsed['justification']}"
                                       if parsed.get("justification") else "")
    decision = "reject" if parsed["choice"] in DENYING_CHOICES else "approve"
    return {"run_id": parsed["run_id"], "step_id": parsed["step_id"], "decision": decision,
            "by": who.by, "aliases": list(who.aliases), "comment": comment, "note": who.note}
