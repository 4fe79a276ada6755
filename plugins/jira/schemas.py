"""JSON Schemas of the jira actions, kept apart so actions stay thin."""

from __future__ import annotations

from typing import Any

PROJECT = {"type": "string", "pattern": "^[A-Z][A-Z0-9_]{1,9}$",
           "description": "Project key, e.g. SEC. Default: the connection's default_project."}
ISSUE = {"type": "string", "pattern": "^(?:[A-Z][A-Z0-9_]{1,9}-[0-9]{1,9}|[0-9]{1,12})$",
         "description": "Issue key (SEC-24) or id."}
LABEL = {"type": "string", "pattern": "^[^\\s]{1,255}$"}
KEY = {"type": "string", "minLength": 1, "maxLength": 80, "pattern": "^[A-Za-z0-9._:-]+$"}
FORMAT = {"enum": ["markdown", "plain"], "default": "markdown"}
TEXT = {"type": "string", "maxLength": 32000}
NAME = {"type": "string", "minLength": 1, "maxLength": 255}

CREATE_ISSUE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["summary"],
    "properties": {
        "project": PROJECT,
        "issue_type": {**NAME, "default": "Task"},
        "summary": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": TEXT,
        "description_format": FORMAT,
        "labels": {"type": "array", "items": LABEL, "maxItems": 50, "uniqueItems": True},
        "priority": {**NAME, "description": "Priority name, e.g. Highest."},
        "correlation_id": {**KEY, "description": "The incident's key (e.g. the alert id): one "
                                                 "issue per key. Default: one per run and step."},
        "fields": {"type": "object", "description": "Further fields as Jira's create API takes "
                                                    "them (customfield_10010: ...)."},
    },
}

CREATE_ISSUE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "id", "url", "project", "correlation_id", "changed"],
    "properties": {
        "key": {"type": "string"},
        "id": {"type": "string"},
        "url": {"type": "string"},
        "project": {"type": "string"},
        "correlation_id": {"type": "string", "description": "The label the issue carries."},
        "changed": {"type": "boolean",
                    "description": "True when this step created the issue (on this attempt or "
                                   "an earlier one), false when it already existed."},
    },
}

ADD_COMMENT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issue", "body"],
    "properties": {
        "issue": ISSUE,
        "body": {"type": "string", "minLength": 1, "maxLength": 32000},
        "body_format": FORMAT,
        "dedupe_key": {**KEY, "description": "Comments with the same key are added once. "
                                             "Default: one comment per run and step."},
    },
}

ADD_COMMENT_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issue", "comment_id", "changed"],
    "properties": {
        "issue": {"type": "string"},
        "comment_id": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}

TRANSITION_ISSUE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issue"],
    "oneOf": [{"required": ["transition"]}, {"required": ["to_status"]}],
    "properties": {
        "issue": ISSUE,
        "transition": {**NAME, "description": "Transition name or id, as the workflow has it."},
        "to_status": {**NAME, "description": "Target status name; the transition leading there "
                                             "is looked up."},
        "comment": {"type": "string", "minLength": 1, "maxLength": 32000},
        "comment_format": FORMAT,
        "resolution": {**NAME, "description": "Resolution name, when the transition screen "
                                              "has the field."},
    },
}

CLOSE_ISSUE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issue"],
    "properties": {
        "issue": ISSUE,
        "comment": {"type": "string", "minLength": 1, "maxLength": 32000,
                    "default": "Closed by crownguard: the response was undone."},
        "comment_format": FORMAT,
        "transition": {**NAME, "description": "Default: the first transition into a Done "
                                              "status."},
        "resolution": NAME,
    },
}

TRANSITION_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issue", "status", "changed"],
    "properties": {
        "issue": {"type": "string"},
        "status": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}

GET_ISSUE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issue"],
    "properties": {
        "issue": ISSUE,
        "fields": {"type": "array", "items": NAME, "maxItems": 100},
    },
}

GET_ISSUE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "id", "url", "status", "status_category", "fields"],
    "properties": {
        "key": {"type": "string"},
        "id": {"type": "string"},
        "url": {"type": "string"},
        "status": {"type": "string"},
        "status_category": {"type": "string"},
        "fields": {"type": "object"},
    },
}

FIND_ISSUES_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jql"],
    "properties": {
        "jql": {"type": "string", "minLength": 1, "maxLength": 4000,
                "description": "A bounded JQL query (Jira Cloud rejects unbounded ones)."},
        "fields": {"type": "array", "items": NAME, "maxItems": 100},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 50},
    },
}

FIND_ISSUES_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["issues", "count", "truncated"],
    "properties": {
        "issues": {"type": "array", "items": {"type": "object"}},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    },
}
