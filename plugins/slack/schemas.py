"""Input and output schemas of the slack actions."""

from __future__ import annotations

from typing import Any

from crownguard.plugins._nudge import NUDGE_INPUT_PROPERTIES
from crownguard.plugins.slack.blocks import CHOICES
from crownguard.plugins.slack.signing import MAX_AGE_SECONDS

CHANNEL_ID_PATTERN = r"^[CGD][A-Z0-9]{8,}$"
TS_PATTERN = r"^\d{10}\.\d{6}$"
DEFAULT_WINDOW_HOURS = 168

_DEDUPE_PROPERTIES: dict[str, Any] = {
    "dedupe": {"type": "boolean", "default": True,
               "description": "Look for this step's earlier message first (needs the "
                              "*:history scope of the conversation type)."},
    "dedupe_key": {"type": "string", "minLength": 1, "maxLength": 200,
                   "description": "Default: the step's idempotency key."},
    "dedupe_window_hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 2160,
                            "default": DEFAULT_WINDOW_HOURS},
}
_MESSAGE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["channel", "ts", "changed"],
    "properties": {"channel": {"type": "string"}, "ts": {"type": "string"},
                   "changed": {"type": "boolean"}},
}

SEND_NUDGE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["file_name", "policy"],
    "anyOf": [{"required": ["email"]}, {"required": ["user_id"]}],
    "properties": {
        "email": {"type": "string", "pattern": r"^[^\s@]+@[^\s@]+$", "maxLength": 320},
        "user_id": {"type": "string", "pattern": r"^[UW][A-Z0-9]{2,}$"},
        **NUDGE_INPUT_PROPERTIES,
        "ask_justification": {"type": "boolean", "default": True},
        "reply_step": {"type": "string", "pattern": "^[a-z0-9_]+$", "maxLength": 128,
                       "description": "The step the answer is for (default: this one)."},
        **_DEDUPE_PROPERTIES,
    },
}
SEND_NUDGE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "channel", "ts", "language", "asked_justification", "changed"],
    "properties": {
        "user_id": {"type": "string"}, "channel": {"type": "string"},
        "ts": {"type": "string"}, "language": {"type": "string"},
        "asked_justification": {"type": "boolean"}, "changed": {"type": "boolean"},
    },
}

POST_MESSAGE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["channel", "text"],
    "properties": {
        "channel": {"type": "string", "minLength": 1, "maxLength": 80,
                    "description": "A channel id (C.../G...) or #name."},
        "text": {"type": "string", "minLength": 1, "maxLength": 40000},
        "allow_markup": {"type": "boolean", "default": False,
                         "description": "Keep <...> links and mentions in text; by default "
                                        "&, < and > are escaped so event data cannot "
                                        "mention @channel or plant links."},
        "blocks": {"type": "array", "maxItems": 50,
                   "items": {"type": "object", "required": ["type"]}},
        "thread_ts": {"type": "string", "pattern": TS_PATTERN},
        **_DEDUPE_PROPERTIES,
    },
}
POST_MESSAGE_OUTPUT = _MESSAGE_OUTPUT

DIRECT_MESSAGE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email", "text"],
    "properties": {
        "email": {"type": "string", "minLength": 3, "maxLength": 320,
                  "description": "The person's e-mail address (users.lookupByEmail)."},
        **{k: v for k, v in POST_MESSAGE_INPUT["properties"].items() if k != "channel"},
        "approval": {"type": "object", "additionalProperties": False,
                     "required": ["run_id", "step_id"],
                     "description": "Add Approve and Deny buttons answering this run id and "
                                    "step (POST /v1/slack/interactions); replaces `blocks`.",
                     "properties": {"run_id": {"type": "string", "minLength": 1,
                                               "maxLength": 200},
                                    "step_id": {"type": "string", "minLength": 1,
                                                "maxLength": 200}}},
    },
}
DIRECT_MESSAGE_OUTPUT = _MESSAGE_OUTPUT

DELETE_MESSAGE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["channel", "ts"],
    "properties": {"channel": {"type": "string", "pattern": CHANNEL_ID_PATTERN},
                   "ts": {"type": "string", "pattern": TS_PATTERN}},
}
DELETE_MESSAGE_OUTPUT = _MESSAGE_OUTPUT
RETRACT_MESSAGE_INPUT = DELETE_MESSAGE_INPUT
RETRACT_MESSAGE_OUTPUT = _MESSAGE_OUTPUT

PARSE_INTERACTION_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["body", "headers"],
    "properties": {
        "body": {"type": "string", "minLength": 1,
                 "description": "The request body exactly as received (form-encoded)."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "max_age_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_AGE_SECONDS,
                            "default": MAX_AGE_SECONDS},
    },
}
PARSE_INTERACTION_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["run_id", "step_id", "user", "choice", "justification"],
    "properties": {
        "run_id": {"type": "string"}, "step_id": {"type": "string"},
        "user": {"type": "string"}, "user_name": {"type": "string"},
        "team_id": {"type": "string"}, "choice": {"enum": list(CHOICES)},
        "justification": {"type": ["string", "null"]},
        "interaction_type": {"enum": ["block_actions", "view_submission"]},
        "message": {"type": ["object", "null"]},
    },
}
