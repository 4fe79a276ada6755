"""JSON Schemas of the Entra actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

USER_REF: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 320,
    "description": "Entra object id, userPrincipalName or primary e-mail (mail)",
}
GROUP_REF: dict[str, Any] = {
    "type": "string", "minLength": 1, "maxLength": 256,
    "description": "group object id or exact displayName",
}
NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}

USER_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user"],
    "properties": {"user": USER_REF},
}

MEMBERSHIP_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["user", "group"],
    "properties": {"user": USER_REF, "group": GROUP_REF},
}

USER_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "user_principal_name", "account_enabled"],
    "properties": {
        "id": {"type": "string"},
        "user_principal_name": {"type": "string"},
        "mail": NULLABLE_STRING,
        "display_name": NULLABLE_STRING,
        "account_enabled": {"type": ["boolean", "null"]},
        "user_type": NULLABLE_STRING,
        "on_premises_sync_enabled": {"type": ["boolean", "null"]},
        "sign_in_sessions_valid_from": NULLABLE_STRING,
    },
}

ACCOUNT_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "user_principal_name", "account_enabled", "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "user_principal_name": {"type": "string"},
        "account_enabled": {"type": "boolean"},
        "changed": {"type": "boolean"},
    },
}

REVOKE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "user_principal_name", "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "user_principal_name": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}

MEMBERSHIP_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "user_principal_name", "group_id", "group_name", "member",
                 "changed"],
    "properties": {
        "user_id": {"type": "string"},
        "user_principal_name": {"type": "string"},
        "group_id": {"type": "string"},
        "group_name": {"type": "string"},
        "member": {"type": "boolean", "description": "membership after the call"},
        "changed": {"type": "boolean"},
    },
}
