"""The `email` connection type: an SMTP submission server, its TLS, AUTH and sender."""

from __future__ import annotations

from typing import Any

from crownguard.engine import CONNECTION_SETTINGS, ConnectionType

# Not connection_schema(): SMTP has no API root on http(s) and no separate connect timeout
# (smtplib takes one timeout for the connection and every command), so the shared settings
# would accept keys that do nothing here.
EMAIL_CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["from_address"],
    "anyOf": [{"required": ["host"]}, {"required": ["base_url"]}],
    "properties": {
        "base_url": {"type": "string", "pattern": r"^smtps?://[^/\s]+/?$",
                     "description": "smtp://host[:587] (STARTTLS) or smtps://host[:465]"},
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "security": {"enum": ["starttls", "tls", "none"], "default": "starttls"},
        "username": {"type": "string", "minLength": 1},
        "password": {"type": "string"},
        "from_address": {"type": "string", "pattern": r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+$"},
        "from_name": {"type": "string", "maxLength": 200},
        "reply_to": {"type": "string", "pattern": r"^[^\s@<>,;\"]+@[^\s@<>,;\"]+$"},
        "ca_file": {"type": "string", "minLength": 1,
                    "description": "A PEM file of CAs to trust besides the system's"},
        "ca_cert": {"type": "string", "minLength": 1,
                    "description": "PEM text of CAs to trust, e.g. ${file:ca.pem}"},
        "verify_tls": {"type": "boolean", "default": True},
        "timeout_seconds": {**CONNECTION_SETTINGS["timeout_seconds"],
                            "description": "timeout of the connection and of each SMTP command "
                                           "(default 30)"},
        "local_hostname": {"type": "string", "minLength": 1},
    },
}
EMAIL_SECRETS = ("password",)

CONNECTION_TYPE = ConnectionType(
    "email", EMAIL_CONNECTION_SCHEMA,
    "An SMTP submission server: host/port (or base_url smtp:// / smtps://), security "
    "(starttls, tls, none), username/password, from_address, and a CA to trust.",
    secrets=EMAIL_SECRETS)
