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

LIST_VERSIONS_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "author": {"type": "string", "minLength": 1, "maxLength": 100,
                   "description": "the organisation or user (default: the connection's "
                                  "`organization`)"},
        "revision": {"type": "string", "minLength": 1, "maxLength": 200, "default": "main"},
    },
}

LIST_VERSIONS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["versions", "count", "truncated"],
    "properties": {
        "versions": {"type": "array", "items": {
            "type": "object", "required": ["name", "version", "stamp"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "stamp": {"type": ["string", "null"]},
                           "private": {"type": "boolean"}, "gated": GATED,
                           "last_modified": {"type": ["string", "null"]},
                           "tags": {"type": "object"}}}},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    },
}

FILES_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": REPO_ID,
        "version": {"type": "string", "minLength": 1, "maxLength": 200, "default": "main",
                    "description": "the revision: a branch, tag or commit"},
        "head_bytes": {"type": "integer", "minimum": 0, "maximum": 8388608, "default": 0,
                       "description": "also read the first bytes of each LFS model file "
                                      "(base64, `head`) for structural fingerprints"},
        "max_files": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 100000},
    },
}

FILES_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "files", "count", "total_bytes"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "files": {"type": "array", "items": {
            "type": "object", "required": ["path", "size", "sha256"],
            "properties": {"path": {"type": "string"},
                           "size": {"type": "integer", "minimum": 0},
                           "sha256": {"type": ["string", "null"]},
                           "git_oid": {"type": ["string", "null"]},
                           "head": {"type": "string"}}}},
        "count": {"type": "integer"},
        "total_bytes": {"type": "integer"},
    },
}

ACCESS_REQUEST = {"type": "object", "required": ["user", "status"], "properties": {
    "user": {"type": "string"}, "fullname": {"type": ["string", "null"]},
    "email": {"type": ["string", "null"]}, "status": {"enum": ["pending", "accepted",
                                                                "rejected"]},
    "timestamp": {"type": ["string", "null"]},
    "fields": {"type": "object", "description": "the gate form's answers"}}}

LIST_ACCESS_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repo_id"],
    "properties": {"repo_id": REPO_ID, "repo_type": REPO_TYPE,
                   "status": {"enum": ["pending", "accepted", "rejected"],
                              "default": "pending"}},
}

LIST_ACCESS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["repo_id", "status", "requests"],
    "properties": {"repo_id": {"type": "string"}, "status": {"type": "string"},
                   "requests": {"type": "array", "items": ACCESS_REQUEST}},
}

ANSWER_ACCESS_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["repo_id", "user"],
    "properties": {"repo_id": REPO_ID, "repo_type": REPO_TYPE, "user": USER,
                   "reason": {"type": "string", "maxLength": 500,
                              "description": "shown to the user (rejections only)"}},
}

ANSWER_ACCESS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["repo_id", "user", "changed", "previous_status"],
    "properties": {"repo_id": {"type": "string"}, "repo_type": {"type": "string"},
                   "user": {"type": "string"}, "status": {"type": ["string", "null"]},
                   "previous_status": {"type": ["string", "null"]},
                   "changed": {"type": "boolean"},
                   "pre_existing": {"type": ["string", "null"]},
                   "revoked": {"type": "boolean"}},
}
