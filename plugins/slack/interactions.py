"""Turn a (verified) Slack interactivity request into a nudge answer.

Slack POSTs `application/x-www-form-urlencoded` with one field, `payload`, holding JSON. Two
payload types carry an answer:

- `block_actions`: the employee pressed one of the nudge's buttons; the button's value is our
  reference, and `state.values` holds what they typed into the justification input.
- `view_submission`: a modal built by the SOC's own app was submitted; `view.private_metadata`
  is our reference and `view.state.values` holds the input (and an optional choice radio).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from crownguard.engine import BadResponse
from crownguard.plugins.slack.blocks import (
    ACTION_CHOICES,
    CHOICE_ACTION,
    CHOICE_BLOCK,
    CHOICES,
    JUSTIFICATION_ACTION,
    JUSTIFICATION_BLOCK,
    JUSTIFICATION_LIMIT,
    REFERENCE_VERSION,
)

OPERATION = "parse interaction"
MAX_BODY_BYTES = 1024 * 1024


def _bad(message: str) -> BadResponse:
    return BadResponse(message, vendor="slack", operation=OPERATION)


def payload_from_body(body: bytes) -> dict[str, Any]:
    """The JSON `payload` field of Slack's form-encoded request body."""
    if len(body) > MAX_BODY_BYTES:
        raise _bad("the request body is too large for an interaction")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise _bad("the body is not form-encoded (expected payload=<json>)") from None
    values = fields.get("payload")
    if not values or len(values) != 1:
        raise _bad("the body has no single 'payload' field")
    try:
        payload = json.loads(values[0])
    except RecursionError:  # arrays or objects nested past Python's stack: no interaction
        raise _bad("the payload field nests objects and lists too deep to be an "
                   "interaction") from None
    except ValueError:
        raise _bad("the payload field is not JSON") from None
    if not isinstance(payload, dict):
        raise _bad("the payload is not a JSON object")
    return payload


def decode_reference(value: Any) -> dict[str, str]:
    """Our `{v, run_id, step_id[, choice]}` reference from a button value or private_metadata."""
    try:
        reference = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        reference = None
    if not isinstance(reference, dict) or reference.get("v") != REFERENCE_VERSION \
            or not all(isinstance(reference.get(k), str) and reference[k]
                       for k in ("run_id", "step_id")):
        raise _bad("the interaction carries no crownguard run/step reference: it does not "
                   "answer a crownguard nudge")
    choice = reference.get("choice")
    if choice is not None and choice not in CHOICES:
        raise _bad(f"unknown choice '{choice}' in the reference")
    return {k: str(v) for k, v in reference.items() if k in ("run_id", "step_id", "choice")}


def answer_from_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`{run_id, step_id, user, user_name, team_id, choice, justification, ...}`."""
    kind = payload.get("type")
    if kind == "block_actions":
        reference, choice, state, message = _from_block_actions(payload)
    elif kind == "view_submission":
        reference, choice, state, message = _from_view_submission(payload)
    else:
        raise _bad(f"payload type '{kind}' does not carry a nudge answer "
                   "(expected block_actions or view_submission)")
    user = payload.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise _bad("the payload has no user id")
    team = _mapping(payload.get("team"))
    return {
        "run_id": reference["run_id"],
        "step_id": reference["step_id"],
        "user": user["id"],
        "user_name": str(user.get("username") or user.get("name") or ""),
        "team_id": str(user.get("team_id") or team.get("id") or ""),
        "choice": choice,
        "justification": _justification(state),
        "interaction_type": kind,
        "message": message,
    }


def _from_block_actions(payload: Mapping[str, Any]) -> tuple[dict[str, str], str, Any,
                                                            dict[str, str] | None]:
    actions = payload.get("actions")
    if not isinstance(actions, list):
        raise _bad("a block_actions payload without actions")
    ours = [a for a in actions if isinstance(a, dict) and a.get("action_id") in ACTION_CHOICES]
    if not ours:
        raise _bad("none of the payload's actions is a crownguard nudge button")
    action = ours[0]
    reference = decode_reference(action.get("value"))
    choice = ACTION_CHOICES[str(action["action_id"])]
    if reference.get("choice", choice) != choice:
        raise _bad("the button's value does not match the button")
    container = _mapping(payload.get("container"))
    channel = _mapping(payload.get("channel")).get("id") or container.get("channel_id")
    ts = container.get("message_ts") or _mapping(payload.get("message")).get("ts")
    message = {"channel": str(channel), "ts": str(ts)} if channel and ts else None
    return reference, choice, (payload.get("state") or {}).get("values"), message


def _from_view_submission(payload: Mapping[str, Any]) -> tuple[dict[str, str], str, Any, None]:
    view = payload.get("view")
    if not isinstance(view, dict):
        raise _bad("a view_submission payload without a view")
    reference = decode_reference(view.get("private_metadata"))
    values = (view.get("state") or {}).get("values")
    selected = _state_value(values, CHOICE_BLOCK, CHOICE_ACTION, "selected_option")
    choice = (selected.get("value") if isinstance(selected, dict) else None) \
        or reference.get("choice") or "business_reason"
    if choice not in CHOICES:
        raise _bad(f"unknown choice '{choice}' in the submitted view")
    return reference, choice, values, None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _state_value(values: Any, block_id: str, action_id: str, field: str) -> Any:
    if not isinstance(values, dict):
        return None
    block = values.get(block_id)
    element = block.get(action_id) if isinstance(block, dict) else None
    return element.get(field) if isinstance(element, dict) else None


def _justification(values: Any) -> str | None:
    text = _state_value(values, JUSTIFICATION_BLOCK, JUSTIFICATION_ACTION, "value")
    if not isinstance(text, str) or not text.strip():
        return None
    return text.strip()[:JUSTIFICATION_LIMIT]
