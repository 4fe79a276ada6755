"""JSON Schemas of the defender actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

MACHINE_ID = {"type": "string", "pattern": "^[0-9a-fA-F]{40}$",
              "description": "Defender machine id"}
HOSTNAME = {"type": "string", "minLength": 1, "maxLength": 255,
            "description": "computer DNS name, or its short host name; the most recently seen "
                           "machine of that name is used"}
COMMENT = {"type": "string", "minLength": 1, "maxLength": 1000,
           "description": "shown in the Defender action centre (default names the run and "
                          "step)"}
SHA1 = {"type": "string", "pattern": "^[0-9a-fA-F]{40}$"}
SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}


def machine_input(**extra: Any) -> dict[str, Any]:
    """An input schema taking a machine by machine_id or hostname, plus `extra` properties."""
    return {"type": "object", "additionalProperties": False,
            "anyOf": [{"required": ["machine_id"]}, {"required": ["hostname"]}],
            "properties": {"machine_id": MACHINE_ID, "hostname": HOSTNAME, **extra}}


# Fields passed through from Defender's machine entity keep Defender's names and types.
PASSTHROUGH = ("osPlatform", "healthStatus", "onboardingStatus", "lastSeen", "firstSeen",
               "lastIpAddress", "lastExternalIpAddress", "riskScore", "exposureLevel",
               "aadDeviceId", "machineTags")

MACHINE: dict[str, Any] = {
    "type": "object",
    "required": ["machine_id", "computer_dns_name"],
    "properties": {
        "machine_id": {"type": "string"},
        "computer_dns_name": {"type": "string"},
        **{name: {"description": f"Defender's {name}"} for name in PASSTHROUGH},
    },
}

FIND_MACHINE_OUTPUT: dict[str, Any] = {
    **MACHINE,
    "required": [*MACHINE["required"], "count", "machines"],
    "properties": {**MACHINE["properties"], "count": {"type": "integer", "minimum": 1},
                   "machines": {"type": "array", "items": MACHINE}},
}

ACTION_FIELDS: dict[str, Any] = {
    "machine_id": {"type": "string"},
    "computer_dns_name": {"type": "string"},
    "action_id": {"type": ["string", "null"],
                  "description": "the machine action holding the state (null: none ever)"},
    "action_status": {"type": ["string", "null"]},
    "changed": {"type": "boolean"},
}

ISOLATE_INPUT = machine_input(
    isolation_type={"enum": ["Full", "Selective"], "default": "Full",
                    "description": "Selective keeps Outlook, Teams and Skype working"},
    comment=COMMENT)

ISOLATION_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": [*ACTION_FIELDS, "isolated", "isolation_type"],
    "properties": {**ACTION_FIELDS, "isolated": {"type": "boolean"},
                   "isolation_type": {"type": ["string", "null"]}},
}

RELEASE_INPUT = machine_input(comment=COMMENT)

QUARANTINE_INPUT: dict[str, Any] = {
    **machine_input(sha1={**SHA1, "description": "SHA-1 of the file (what Defender needs)"},
                    sha256={**SHA256, "description": "SHA-256 (as alert sources give it); "
                                                     "resolved to the SHA-1 through Defender's "
                                                     "file profile"},
                    comment=COMMENT),
    "allOf": [{"anyOf": [{"required": ["sha1"]}, {"required": ["sha256"]}]}],
}

QUARANTINE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": [*ACTION_FIELDS, "sha1", "sha256"],
    "properties": {**ACTION_FIELDS, "sha1": {"type": "string"},
                   "sha256": {"type": ["string", "null"]}},
}
