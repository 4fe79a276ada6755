"""JSON Schemas of the falcon actions' inputs and outputs."""

from __future__ import annotations

from typing import Any

DEVICE_ID = {"type": "string", "pattern": "^[0-9a-fA-F]{32}$",
             "description": "Falcon agent id (AID) of the host"}
HOSTNAME = {"type": "string", "minLength": 1, "maxLength": 255,
            "description": "host name; the most recently seen host of that name is used"}
# RTR reads the command line itself: no quotes or line breaks in paths.
PATH = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[^\"\\r\\n\\x00]+$"}
SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}

HOST_SELECTOR: dict[str, Any] = {"anyOf": [{"required": ["device_id"]},
                                           {"required": ["hostname"]}]}


def host_input(**extra: Any) -> dict[str, Any]:
    """An input schema taking a host by device_id or hostname, plus `extra` properties."""
    return {"type": "object", "additionalProperties": False, **HOST_SELECTOR,
            "properties": {"device_id": DEVICE_ID, "hostname": HOSTNAME, **extra}}


# Fields passed through from the Falcon host record keep Falcon's names and types.
PASSTHROUGH = ("platform_name", "os_version", "agent_version", "local_ip", "external_ip",
               "mac_address", "last_seen", "first_seen")

HOST: dict[str, Any] = {
    "type": "object",
    "required": ["device_id", "hostname", "status"],
    "properties": {
        "device_id": {"type": "string"},
        "hostname": {"type": "string"},
        "status": {"type": "string", "description": "normal, containment_pending, contained "
                                                    "or lift_containment_pending"},
        **{name: {"description": f"Falcon's {name}"} for name in PASSTHROUGH},
    },
}

FIND_HOST_OUTPUT: dict[str, Any] = {
    **HOST,
    "required": [*HOST["required"], "count", "hosts"],
    "properties": {**HOST["properties"],
                   "count": {"type": "integer", "minimum": 1},
                   "hosts": {"type": "array", "items": HOST}},
}

CONTAINMENT_OUTPUT: dict[str, Any] = {
    **HOST,
    "required": [*HOST["required"], "previous_status", "changed"],
    "properties": {**HOST["properties"],
                   "previous_status": {"type": "string"},
                   "changed": {"type": "boolean"}},
}

EVIDENCE: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "cloud_request_id": {"type": "string"},
        "session_id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "sha256": {"type": ["string", "null"]},
        "size": {"type": ["integer", "null"]},
    },
}

QUARANTINE_INPUT: dict[str, Any] = {
    **host_input(
        path={**PATH, "description": "full path of the model file on the host"},
        mode={"enum": ["remove", "move"], "default": "remove",
              "description": "remove the file (rm) or move it into `destination` (mv)"},
        destination={**PATH, "description": "existing quarantine folder on the host "
                                            "(mode: move)"},
        sha256={**SHA256, "description": "expected SHA-256; the file is left alone when it "
                                         "differs"},
        collect_evidence={"type": "boolean", "default": True,
                          "description": "upload a copy to the Falcon cloud (RTR get) before "
                                         "touching the file"},
    ),
    "required": ["path"],
    "if": {"properties": {"mode": {"const": "move"}}, "required": ["mode"]},
    "then": {"required": ["destination"]},
}

QUARANTINE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["device_id", "hostname", "path", "mode", "status", "changed", "sha256",
                 "evidence", "destination"],
    "properties": {
        "device_id": {"type": "string"},
        "hostname": {"type": "string"},
        "path": {"type": "string"},
        "mode": {"enum": ["remove", "move"]},
        "destination": {"type": ["string", "null"],
                        "description": "where the file now is (mode: move)"},
        "status": {"enum": ["removed", "moved", "absent"]},
        "sha256": {"type": ["string", "null"]},
        "evidence": EVIDENCE,
        "changed": {"type": "boolean"},
    },
}

RESTORE_INPUT: dict[str, Any] = {
    **host_input(
        path={**PATH, "description": "original path of the file"},
        destination={**PATH, "description": "quarantine folder the file was moved into"},
    ),
    "required": ["path", "destination"],
}

RESTORE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["device_id", "hostname", "path", "source", "status", "sha256", "changed"],
    "properties": {
        "device_id": {"type": "string"},
        "hostname": {"type": "string"},
        "path": {"type": "string"},
        "source": {"type": "string"},
        "status": {"const": "restored"},
        "sha256": {"type": ["string", "null"]},
        "changed": {"type": "boolean"},
    },
}
