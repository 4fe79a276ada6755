"""The `http` connection type: the outbound hosts core.http_request may call, and the named
credentials it may send to them.

    http:
      allowed_hosts: [hooks.example.com, "*.internal.example"]
      credentials:
        hooks: {header: Authorization, value: "Bearer ${env:HOOKS_TOKEN}",
                hosts: [hooks.example.com]}

A step names a credential (`with: {credential: hooks}`) and never holds its value. `header`
defaults to Authorization; `hosts` (the same entry forms as `allowed_hosts`) defaults to the
connection's `allowed_hosts`, and a request to any other host is refused with the credential
unsent.
"""

from __future__ import annotations

from typing import Any

from crownguard.engine import HTTP_CONNECTION_SCHEMA, ConnectionType

CREDENTIAL_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
# RFC 9110 field-name: a token, so no colon, space or line break can end up in the request.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
DEFAULT_HEADER = "Authorization"

CREDENTIAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["value"],
    "properties": {
        "header": {"type": "string", "pattern": HEADER_NAME,
                   "description": f"the request header it is sent in (default {DEFAULT_HEADER})"},
        "value": {"type": "string", "minLength": 1, "pattern": r"^[^\r\n]*$",
                  "description": "the header's value, a secret: write it as ${env:NAME} or "
                                 "${file:PATH} (\"Bearer ${env:HOOKS_TOKEN}\")"},
        "hosts": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1},
                  "description": "the only hosts it is sent to (default: allowed_hosts)"},
    },
}

HTTP_SCHEMA: dict[str, Any] = {
    **HTTP_CONNECTION_SCHEMA,
    "properties": {
        **HTTP_CONNECTION_SCHEMA["properties"],
        "credentials": {"type": "object", "propertyNames": {"pattern": CREDENTIAL_NAME},
                        "additionalProperties": CREDENTIAL_SCHEMA},
    },
}

CONNECTION_TYPE = ConnectionType(
    "http", HTTP_SCHEMA,
    "Outbound hosts core.http_request may call (allowed_hosts: host, host:port or "
    "*.domain), named credentials it may send to them (credentials), optional timeouts.")
