"""JSON Schemas of the mlflow actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

NAME = {"type": "string", "minLength": 1, "maxLength": 500,
        "description": "registered model name"}
# MLflow versions are strings of digits everywhere; a playbook may well write 3 for "3".
VERSION = {"oneOf": [{"type": "string", "pattern": "^[1-9][0-9]*$"},
                     {"type": "integer", "minimum": 1}],
           "description": "model version number"}
ALIAS = {"type": "string", "minLength": 1, "maxLength": 255}
USER = {"type": "string", "minLength": 1, "maxLength": 255,
        "description": "username in MLflow's auth app (often an e-mail)"}
NULLABLE_TEXT = {"type": ["string", "null"]}
STRINGS = {"type": "array", "items": {"type": "string"}}

RECORD: dict[str, Any] = {
    "type": ["object", "null"],
    "required": ["run_id", "reason", "quarantined_at", "aliases", "access"],
    "properties": {
        "run_id": {"type": "string"},
        "reason": {"type": "string"},
        "quarantined_at": {"type": "string"},
        "aliases": STRINGS,
        "access": {"type": "array", "items": {
            "type": "object", "required": ["user", "api", "previous"],
            "properties": {"user": {"type": "string"}, "api": {"type": "string"},
                           "previous": NULLABLE_TEXT}}},
    },
}

MODEL_VERSION: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "status", "aliases", "tags", "quarantined"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "status": {"type": "string"},
        "current_stage": NULLABLE_TEXT,
        "source": NULLABLE_TEXT,
        "run_id": NULLABLE_TEXT,
        "description": NULLABLE_TEXT,
        "user_id": NULLABLE_TEXT,
        "creation_timestamp": {"type": ["integer", "null"]},
        "last_updated_timestamp": {"type": ["integer", "null"]},
        "aliases": STRINGS,
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "quarantined": {"type": "boolean"},
        "quarantine": RECORD,
    },
}

GET_VERSION_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "oneOf": [{"required": ["version"]}, {"required": ["alias"]}],
    "properties": {"name": NAME, "version": VERSION, "alias": ALIAS},
}

LIST_VERSIONS_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {**NAME, "description": "only this model's versions"},
        "filter": {"type": "string", "minLength": 1, "maxLength": 2000,
                   "description": "an MLflow search filter, e.g. \"tags.team = 'nlp'\" "
                                  "(combined with name by AND)"},
        "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "default": 1000},
    },
}

LIST_VERSIONS_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["versions", "count", "truncated"],
    "properties": {
        "versions": {"type": "array", "items": {
            "type": "object", "required": ["name", "version", "status"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "status": {"type": "string"}, "source": NULLABLE_TEXT,
                           "run_id": NULLABLE_TEXT, "quarantined": {"type": "boolean"},
                           "last_updated_timestamp": {"type": ["integer", "null"]},
                           "tags": {"type": "object"}}}},
        "count": {"type": "integer"},
        "truncated": {"type": "boolean"},
    },
}

QUARANTINE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version"],
    "properties": {
        "name": NAME,
        "version": VERSION,
        "reason": {"type": "string", "minLength": 1, "maxLength": 1000,
                   "default": "quarantined by crownguard"},
        "user": {**USER, "description": "take this user's access to the model away (needs the "
                                        "auth app and an admin connection)"},
    },
}

ACCESS: dict[str, Any] = {
    "type": ["object", "null"],
    "required": ["user", "status", "changed"],
    "properties": {
        "user": {"type": "string"},
        "status": {"enum": ["revoked", "already_revoked", "auth_app_not_enabled"]},
        "changed": {"type": "boolean"},
        "api": {"enum": ["v3", "legacy", None]},
        "permission": NULLABLE_TEXT,
        "effective": NULLABLE_TEXT,
        "is_admin": {"type": ["boolean", "null"]},
    },
}

QUARANTINE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "quarantined", "changed", "aliases_removed", "record"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "quarantined": {"const": True},
        "changed": {"type": "boolean"},
        "already_quarantined": {"type": "boolean"},
        "aliases_removed": STRINGS,
        "record": {**RECORD, "type": "object"},
        "access": ACCESS,
    },
}

RELEASE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version"],
    "properties": {
        "name": NAME,
        "version": VERSION,
        "move_aliases": {"type": "boolean", "default": False,
                         "description": "also take back an alias someone pointed at another "
                                        "version during quarantine"},
    },
}

RELEASE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "released", "changed", "aliases_restored",
                 "aliases_skipped", "access_restored", "access_skipped"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "released": {"type": "boolean"},
        "changed": {"type": "boolean"},
        "aliases_restored": STRINGS,
        "aliases_skipped": {"type": "array", "items": {
            "type": "object", "required": ["alias", "points_to"],
            "properties": {"alias": {"type": "string"}, "points_to": {"type": "string"}}}},
        "access_restored": {"type": "array", "items": {"type": "object",
                                                       "required": ["user", "permission"]}},
        "access_skipped": {"type": "array", "items": {"type": "object",
                                                      "required": ["user", "reason"]}},
        "record": RECORD,
    },
}

FILES_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version"],
    "properties": {
        "name": NAME,
        "version": VERSION,
        "max_files": {"type": "integer", "minimum": 1, "maximum": 1000000, "default": 10000},
        "head_bytes": {"type": "integer", "minimum": 0, "maximum": 8388608, "default": 0,
                       "description": "also return each file's first bytes (base64, `head`), "
                                      "read from the same download that hashes it: the "
                                      "fingerprint index computes structural fingerprints "
                                      "from them"},
    },
}

FILES_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "version", "artifact_uri", "files", "count", "total_bytes"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "artifact_uri": {"type": "string"},
        "files": {"type": "array", "items": {
            "type": "object", "required": ["path", "size", "sha256"],
            "properties": {"path": {"type": "string"},
                           "size": {"type": "integer", "minimum": 0},
                           "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                           "head": {"type": "string"}}}},
        "count": {"type": "integer"},
        "total_bytes": {"type": "integer"},
    },
}

PERMISSION = {"enum": ["READ", "USE", "EDIT", "MANAGE"], "default": "READ",
              "description": "the permission on the model (READ lets the user download it)"}

PERMISSION_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "username"],
    "properties": {"name": NAME, "username": {"type": "string", "minLength": 1,
                                              "maxLength": 500},
                   "permission": PERMISSION},
}

GRANT_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "username", "permission", "api", "changed", "pre_existing"],
    "properties": {"name": {"type": "string"}, "username": {"type": "string"},
                   "permission": {"type": "string"}, "api": {"type": "string"},
                   "is_admin": {"type": "boolean"}, "changed": {"type": "boolean"},
                   "pre_existing": {"type": ["string", "null"]}},
}

REVOKE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["name", "username", "permission", "api", "changed", "left"],
    "properties": {"name": {"type": "string"}, "username": {"type": "string"},
                   "permission": {"type": "string"}, "api": {"type": "string"},
                   "changed": {"type": "boolean"}, "left": {"type": ["string", "null"]}},
}

REGISTERED_MODEL_INPUT: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {"name": NAME},
}

REGISTERED_MODEL_OUTPUT: dict[str, Any] = {
    "type": "object", "required": ["name", "tags", "aliases"],
    "properties": {"name": {"type": "string"},
                   "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                   "aliases": {"type": "object", "additionalProperties": {"type": "string"}},
                   "description": {"type": ["string", "null"]}},
}
