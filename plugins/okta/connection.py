"""The `okta` connection type: an Okta org and the API token of an admin."""

from __future__ import annotations

from typing import Any

from crownguard.engine import CONNECTION_SETTINGS, ConnectionType, connection_schema

OKTA_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "the org URL, e.g. https://acme.okta.com"},
    "token": {"type": "string", "minLength": 1,
              "description": "an Okta API token, sent as `Authorization: SSWS <token>`"},
}, required=("base_url", "token"))

CONNECTION_TYPE = ConnectionType(
    "okta", OKTA_CONNECTION_SCHEMA,
    "An Okta org: base_url and an API token (SSWS) of an admin allowed to manage users "
    "and groups.", secrets=("token",))
