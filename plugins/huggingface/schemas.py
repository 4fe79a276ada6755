"""JSON Schemas of the huggingface actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

REPO_ID = {"type": "string", "pattern": r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$",
           "maxLength": 200, "description": "namespace/name, e.g. acme-ml/fraud-llm"}
REPO_TYPE = {"enum": ["model", "dataset", "space"], "default": "model"}
GATED = {"enum": ["manual", "auto", False],
         "description": "manual: access requests wait for approval; auto: approved at once; "
                        "false: not gated"}
USER = {"type": "string", "minLength": 1, "maxLength": 100, "description": "Hub username"}

REPO_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repo_id"],
    "properties": {"repo_id": REPO_ID, "repo_type": REPO_TYPE},
}

REPO_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["repo_id", "repo_type", "private", "gated", "disabled", "files"],
    "properties": {
        "repo_id": {"type": "string"},
        "repo_type": {"type": "string"},
        "private": {"type": "boolean"},
        "gated": GATED,
        "disabled": {"type": "boolean"},
        "sha": {"type": ["string", "null"]},
        "author": {"type": ["string", "null"]},
        "last_modified": {"type": ["string", "null"]},
        "downloads": {"type": ["integer", "null"]},
        "likes": {"type": ["integer", "null"]},
        "files": {"type": "array", "items": {"type": "string"}},
    },
}

STATE: dict[str, Any] = {
    "type": "object",
    "required": ["private", "gated"],
    "properties": {
        "private": {"type": "boolean"},
        "gated": GATED,
        "user_access": {"type": ["object", "null"], "required": ["user", "status"],
                        "properties": {"user": {"type": "string"},
                                       "status": {"enum": ["accepted", "not_accepted"]}}},
    },
}

RESTRICT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repo_id"],
    "properties": {
        "repo_id": REPO_ID,
        "repo_type": REPO_TYPE,
        "private": {"type": "boolean", "default": True,
                    "description": "make the repo private (false: leave its visibility)"},
        "gated": {**GATED, "default": "manual",
                  "description": "gate the repo (false: leave its gating)"},
        "user": {**USER, "description": "reject this user's accepted access request"},
        "reason": {"type": "string", "minLength": 1, "maxLength": 500,
                   "description": "rejection reason shown to the user"},
    },
}

RESTRICT_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["repo_id", "repo_type", "changed", "private", "gated", "user_rejected",
                 "previous", "previous_source"],
    "properties": {
        "repo_id": {"type": "string"},
        "repo_type": {"type": "string"},
        "changed": {"type": "boolean"},
        "private": {"type": "boolean"},
        "gated": GATED,
        "user_rejected": {"type": "boolean"},
        "previous": STATE,
        "previous_source": {"enum": ["first_attempt", "read"]},
    },
}

UNRESTRICT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repo_id", "private", "gated"],
    "properties": {
        "repo_id": REPO_ID,
        "repo_type": REPO_TYPE,
        "private": {"type": "boolean", "description": "the visibility to restore "
                                                      "(restrict_repo's previous.private)"},
        "gated": {**GATED, "description": "the gating to restore (previous.gated)"},
        "accept_users": {"type": "array", "items": USER, "maxItems": 100, "default": [],
                         "description": "users whose access request to accept again"},
    },
}

UNRESTRICT_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["repo_id", "repo_type", "changed", "private", "gated", "users_accepted"],
    "properties": {
        "repo_id": {"type": "string"},
        "repo_type": {"type": "string"},
        "changed": {"type": "boolean"},
        "private": {"type": "boolean"},
        "gated": GATED,
        "users_accepted": {"type": "array", "items": {"type": "string"}},
    },
}
