"""The `incydr` connection type: where the Incydr API is and which API client to use."""

from __future__ import annotations

from crownguard.engine import ConnectionType

CONNECTION_TYPE = ConnectionType(
    "incydr",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["base_url", "client_id", "client_secret"],
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://",
                         "description": "API gateway, e.g. https://api.us.code42.com"},
            "token_url": {"type": "string", "pattern": "^https?://",
                          "description": "OAuth endpoint; default <base_url>/v1/oauth"},
            "client_id": {"type": "string", "minLength": 1,
                          "description": "Incydr API client id (key-...)"},
            "client_secret": {"type": "string", "minLength": 1},
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
            "connect_timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        },
    },
    "Code42 Incydr API gateway and an API client (id and secret; OAuth token via "
    "POST /v1/oauth with HTTP Basic).",
    secrets=("client_secret",),
)
