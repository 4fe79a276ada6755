"""Input and output schemas of the core actions."""

from __future__ import annotations

from typing import Any

from .connection import CREDENTIAL_NAME

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

HTTP_REQUEST_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "method": {"enum": METHODS, "default": "GET"},
        "url": {"type": "string", "pattern": "^https?://"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "params": {"type": "object",
                   "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "json": {},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "credential": {"type": "string", "pattern": CREDENTIAL_NAME,
                       "description": "a credential of connections.http.credentials to send "
                                      "(its value never appears in the playbook or the run)"},
    },
}
HTTP_REQUEST_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["status_code", "headers", "body"],
    "properties": {
        "status_code": {"type": "integer"},
        "headers": {"type": "object"},
        "body": {},
    },
}

ANY_OBJECT: dict[str, Any] = {"type": "object"}

TRANSFORM_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["data"],
    "properties": {"data": {}, "expression": {"type": "string", "minLength": 1}},
}
TRANSFORM_OUTPUT: dict[str, Any] = {"type": "object", "required": ["result"]}

APPROVAL_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "approvers": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        "details": {},
    },
}
APPROVAL_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["decision"],
    "properties": {
        "decision": {"enum": ["approve", "dry_run"]},
        "by": {"type": "string"},
        "comment": {"type": ["string", "null"]},
        "at": {"type": "string"},
    },
}
