"""Input and output schemas of the SCIM actions."""

from __future__ import annotations

from typing import Any

USER_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user"],
    "properties": {
        "user": {"type": "string", "minLength": 1, "maxLength": 320,
                 "description": "SCIM id, userName or e-mail address"},
        "connection": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "default": "scim",
                       "description": "which `type: scim` connection (service) to use"},
    },
}
USER_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "user_name", "active"],
    "properties": {
        "id": {"type": "string"},
        "user_name": {"type": "string"},
        "active": {"type": ["boolean", "null"]},
        "display_name": {"type": ["string", "null"]},
        "external_id": {"type": ["string", "null"]},
        "emails": {"type": "array", "items": {"type": "string"}},
    },
}
ACTIVE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "user_name", "active", "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "user_name": {"type": "string"},
        "active": {"type": "boolean"},
        "changed": {"type": "boolean"},
    },
}
