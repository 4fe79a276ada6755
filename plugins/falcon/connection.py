"""The `falcon` connection type: where the Falcon API is and which API client to use."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    CONNECTION_SETTINGS,
    POLLING_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

DEFAULT_BASE_URL = "https://api.crowdstrike.com"

FALCON_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "API host of the Falcon cloud, e.g. "
                                "https://api.us-2.crowdstrike.com"},
    "token_url": {**TOKEN_URL_SETTING, "description": "OAuth2 token endpoint (default: "
                                                      "<base_url>/oauth2/token)"},
    "client_id": {"type": "string", "minLength": 1},
    "client_secret": {"type": "string", "minLength": 1},
    "member_cid": {"type": "string", "minLength": 1,
                   "description": "MSSP: act on behalf of this child CID"},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 5000,
                  "description": "limit per page of host queries (default 500)"},
    "poll_interval_seconds": {**POLLING_SETTINGS["poll_interval_seconds"],
                              "description": "wait between status polls (default 2)"},
    "max_wait_seconds": {**POLLING_SETTINGS["max_wait_seconds"],
                         "description": "give up waiting for containment or an RTR command "
                                        "after this long (default 600; the step timeout also "
                                        "bounds it)"},
}, required=("client_id", "client_secret"))

CONNECTION_TYPE = ConnectionType(
    "falcon", FALCON_CONNECTION_SCHEMA,
    "CrowdStrike Falcon API client (OAuth2 client credentials). Needs the API scopes "
    "Hosts: Read/Write and Real time response: Read/Write (active responder).",
    secrets=("client_secret",))
