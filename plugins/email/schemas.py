"""Input and output schemas of the email actions."""

from __future__ import annotations

from typing import Any

from crownguard.plugins._nudge import NUDGE_INPUT_PROPERTIES

# One address, nothing that could end a header or add another address.
ADDRESS = {"type": "string", "pattern": r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+$", "maxLength": 320}

SEND_NUDGE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to", "file_name", "policy"],
    "properties": {
        "to": {"oneOf": [ADDRESS, {"type": "array", "items": ADDRESS, "minItems": 1,
                                   "maxItems": 10, "uniqueItems": True}]},
        "cc": {"type": "array", "items": ADDRESS, "maxItems": 10, "uniqueItems": True},
        "reply_to": ADDRESS,
        **NUDGE_INPUT_PROPERTIES,
        "dedupe": {"type": "boolean", "default": True},
        "dedupe_key": {"type": "string", "minLength": 1, "maxLength": 120},
    },
}
SEND_NUDGE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["message_id", "accepted", "refused", "language", "changed"],
    "properties": {
        "message_id": {"type": "string"},
        "accepted": {"type": "array", "items": {"type": "string"}},
        "refused": {"type": "array", "items": {
            "type": "object", "required": ["address", "reply"],
            "properties": {"address": {"type": "string"}, "reply": {"type": "string"}}}},
        "language": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}
