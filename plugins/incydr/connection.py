"""The `incydr` connection type: where the Incydr API is and which API client to use."""

from __future__ import annotations

from crownguard.engine import (
    CONNECTION_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

CONNECTION_TYPE = ConnectionType(
    "incydr",
    connection_schema({
        "base_url": {**CONNECTION_SETTINGS["base_url"],
                     "description": "API gateway, e.g. https://api.us.code42.com"},
        "token_url": {**TOKEN_URL_SETTING,
                      "description": "OAuth endpoint; default <base_url>/v1/oauth"},
        "client_id": {"type": "string", "minLength": 1,
                      "description": "Incydr API client id (key-...)"},
        "client_secret": {"type": "string", "minLength": 1},
    }, required=("base_url", "client_id", "client_secret")),
    "Code42 Incydr API gateway and an API client (id and secret; OAuth token via "
    "POST /v1/oauth with HTTP Basic).",
    secrets=("client_secret",),
)
