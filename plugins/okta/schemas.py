"""JSON Schemas of the Okta actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

USER_REF: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 320,
    "description": "Okta user id (00u...), login, login shortname or primary e-mail",
}
GROUP_REF: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 255,
    "description": "Okta group id (00g...) or exact group name",
}
NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}

USER_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user"],
    "properties": {"user": USER_REF},
}

CLEAR_SESSIONS_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user"],
    "properties": {
        "user": USER_REF,
        "oauth_tokens": {"type": "boolean", "default": True,
                         "description": "also revoke the user's OIDC/OAuth access and refresh "
                                        "tokens"},
        "forget_devices": {"type": "boolean", "default": True,
                           "description": "also forget the user's remembered factors on all "
                                          "devices"},
    },
}

MEMBERSHIP_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user", "group"],
    "properties": {"user": USER_REF, "group": GROUP_REF},
}

USER_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "login", "status"],
    "properties": {
        "id": {"type": "string"},
        "login": {"type": "string"},
        "email": NULLABLE_STRING,
        "status": {"type": "string"},
        "first_name": NULLABLE_STRING,
        "last_name": NULLABLE_STRING,
        "last_login": NULLABLE_STRING,
        "status_changed": NULLABLE_STRING,
        "profile": {"type": "object"},
    },
}

LIFECYCLE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "login", "status", "previous_status", "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "login": {"type": "string"},
        "status": {"type": "string"},
        "previous_status": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}

CLEAR_SESSIONS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "login", "oauth_tokens_revoked", "devices_forgotten", "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "login": {"type": "string"},
        "oauth_tokens_revoked": {"type": "boolean"},
        "devices_forgotten": {"type": "boolean"},
        "changed": {"type": "boolean"},
    },
}

MEMBERSHIP_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "login", "group_id", "group_name", "member", "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "login": {"type": "string"},
        "group_id": {"type": "string"},
        "group_name": {"type": "string"},
        "group_type": NULLABLE_STRING,
        "member": {"type": "boolean", "description": "membership after the call"},
        "changed": {"type": "boolean"},
    },
}
