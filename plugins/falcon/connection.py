"""The `falcon` connection type: where the Falcon API is and which API client to use."""

from __future__ import annotations

from typing import Any

from crownguard.engine import ConnectionType

DEFAULT_BASE_URL = "https://api.crowdstrike.com"

URL = {"type": "string", "pattern": "^https?://"}
POSITIVE = {"type": "number", "exclusiveMinimum": 0}

FALCON_CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["client_id", "client_secret"],
    "properties": {
        "base_url": {**URL, "description": "API host of the Falcon cloud, e.g. "
                                           "https://api.us-2.crowdstrike.com"},
        "token_url": {**URL, "description": "OAuth2 token endpoint (default: "
                                            "<base_url>/oauth2/token)"},
        "client_id": {"type": "string", "minLength": 1},
        "client_secret": {"type": "string", "minLength": 1},
        "member_cid": {"type": "string", "minLength": 1,
                       "description": "MSSP: act on behalf of this child CID"},
        "page_size": {"type": "integer", "minimum": 1, "maximum": 5000,
                      "description": "limit per page of host queries (default 500)"},
        "poll_interval_seconds": {**POSITIVE, "description": "wait between status polls "
                                                             "(default 2)"},
        "max_wait_seconds": {**POSITIVE, "description": "give up waiting for containment or "
                                                        "an RTR command after this long "
                                                        "(default 600; the step timeout also "
                                                        "bounds it)"},
        "timeout_seconds": POSITIVE,
        "connect_timeout_seconds": POSITIVE,
    },
}

FALCON_CONNECTION = ConnectionType(
    "falcon", FALCON_CONNECTION_SCHEMA,
    "CrowdStrike Falcon API client (OAuth2 client credentials). Needs the API scopes "
    "Hosts: Read/Write and Real time response: Read/Write (active responder).",
    secrets=("client_secret",))
