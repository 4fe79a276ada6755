"""JSON Schemas of the servicenow actions, kept apart so actions stay thin.

Values that end up inside an encoded query (`sysparm_query`) are restricted by pattern: `^`
separates query terms there, so a user name or correlation key must not contain one.
"""

from __future__ import annotations

from typing import Any

TABLE = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,79}$",
         "description": "Table name, e.g. incident or sn_hr_core_case."}
SYS_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
NUMBER = {"type": "string", "pattern": "^[A-Za-z]{2,8}[0-9]{3,12}$",
          "description": "Record number, e.g. INC0010001 or HRC0001001."}
USER = {"type": "string", "minLength": 1, "maxLength": 254, "pattern": r"^[^\^=\s,]+$",
        "description": "A sys_user given by sys_id, user_name or e-mail."}
KEY = {"type": "string", "minLength": 1, "maxLength": 80, "pattern": "^[A-Za-z0-9._:-]+$"}
FIELD_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,79}$"}
EXTRA_FIELDS = {"type": "object", "propertyNames": FIELD_NAME,
                "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "Further fields of the table, as the instance names them."}
TEXT = {"type": "string", "maxLength": 32000}

RECORD_REF = {"anyOf": [{"required": ["sys_id"]}, {"required": ["number"]}]}

CREATED_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "sys_id", "number", "state", "correlation_id", "link", "changed"],
    "properties": {
        "table": {"type": "string"},
        "sys_id": {"type": "string"},
        "number": {"type": "string"},
        "state": {"type": "string"},
        "correlation_id": {"type": "string"},
        "link": {"type": "string"},
        "changed": {"type": "boolean",
                    "description": "True when this step created the record (on this attempt "
                                   "or an earlier one), false when it already existed."},
    },
}

_COMMON_CREATE: dict[str, Any] = {
    "short_description": {"type": "string", "minLength": 1, "maxLength": 160},
    "subject": {"type": "string", "minLength": 1, "maxLength": 160,
                "description": "Alias of short_description."},
    "description": TEXT,
    "assignment_group": SYS_ID,
    "work_notes": TEXT,
    "correlation_id": {**KEY, "description": "The incident's key (e.g. the alert id): one "
                                             "record per key. Default: one per run and step."},
    "correlation_field": {**FIELD_NAME, "default": "correlation_id"},
    "fields": EXTRA_FIELDS,
}
_NEEDS_SUMMARY = {"anyOf": [{"required": ["short_description"]}, {"required": ["subject"]}]}

CREATE_INCIDENT_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    **_NEEDS_SUMMARY,
    "properties": {
        **_COMMON_CREATE,
        "caller": USER,
        "urgency": {"enum": [1, 2, 3, "1", "2", "3"]},
        "impact": {"enum": [1, 2, 3, "1", "2", "3"]},
        "category": {"type": "string", "maxLength": 40},
    },
}

CREATE_HR_CASE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    **_NEEDS_SUMMARY,
    "properties": {
        **_COMMON_CREATE,
        "table": {**TABLE, "default": "sn_hr_core_case",
                  "description": "sn_hr_core_case or one of its extensions."},
        "subject_person": USER,
        "opened_for": {**USER, "description": "Default: subject_person."},
        "hr_service": SYS_ID,
        "priority": {"enum": [1, 2, 3, 4, "1", "2", "3", "4"]},
    },
}

ADD_WORK_NOTE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "note"],
    **RECORD_REF,
    "properties": {
        "table": TABLE,
        "sys_id": SYS_ID,
        "number": NUMBER,
        "note": {"type": "string", "minLength": 1, "maxLength": 32000},
        "dedupe_key": {**KEY, "description": "Notes with the same key are written once. "
                                             "Default: one note per run and step."},
    },
}

ADD_WORK_NOTE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "sys_id", "number", "changed"],
    "properties": {
        "table": {"type": "string"},
        "sys_id": {"type": "string"},
        "number": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}

GET_RECORD_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table"],
    **RECORD_REF,
    "properties": {
        "table": TABLE,
        "sys_id": SYS_ID,
        "number": NUMBER,
        "fields": {"type": "array", "items": FIELD_NAME, "maxItems": 100},
    },
}

GET_RECORD_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "sys_id", "number", "record", "link"],
    "properties": {
        "table": {"type": "string"},
        "sys_id": {"type": "string"},
        "number": {"type": "string"},
        "record": {"type": "object"},
        "link": {"type": "string"},
    },
}

FIND_RECORDS_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "query"],
    "properties": {
        "table": TABLE,
        "query": {"type": "string", "maxLength": 4000,
                  "description": "An encoded query, e.g. active=true^caller_id=<sys_id>."},
        "fields": {"type": "array", "items": FIELD_NAME, "maxItems": 100},
        "max_records": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
    },
}

FIND_RECORDS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "records", "count", "truncated"],
    "properties": {
        "table": {"type": "string"},
        "records": {"type": "array", "items": {"type": "object"}},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    },
}

CLOSE_RECORD_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table"],
    **RECORD_REF,
    "properties": {
        "table": TABLE,
        "sys_id": SYS_ID,
        "number": NUMBER,
        "close_notes": {"type": "string", "minLength": 1, "maxLength": 4000,
                        "default": "Closed by crownguard: the response was undone."},
        "close_code": {"type": "string", "minLength": 1, "maxLength": 40,
                       "description": "incident only; default 'Solution provided'."},
        "state": {"type": "string", "pattern": "^[0-9]{1,4}$",
                  "description": "The closing state value; default by table (incident 6, "
                                 "HR case and other tasks 3)."},
    },
}

CLOSE_RECORD_OUTPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["table", "sys_id", "number", "state", "changed"],
    "properties": {
        "table": {"type": "string"},
        "sys_id": {"type": "string"},
        "number": {"type": "string"},
        "state": {"type": "string"},
        "changed": {"type": "boolean"},
    },
}
