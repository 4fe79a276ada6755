"""The `servicenow` connection type: an instance and how to authenticate to it."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    CONNECTION_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

SERVICENOW_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "https://<instance>.service-now.com"},
    "username": {"type": "string", "minLength": 1},
    "password": {"type": "string", "minLength": 1},
    "token": {"type": "string", "minLength": 1,
              "description": "A static OAuth bearer token (not refreshed)."},
    "client_id": {"type": "string", "minLength": 1},
    "client_secret": {"type": "string", "minLength": 1},
    "token_url": {**TOKEN_URL_SETTING, "description": "Default: <base_url>/oauth_token.do"},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 10000},
}, required=("base_url",), anyOf=[
    {"required": ["username", "password"]},
    {"required": ["token"]},
    {"required": ["client_id", "client_secret"]},
])

CONNECTION_TYPE = ConnectionType(
    "servicenow", SERVICENOW_CONNECTION_SCHEMA,
    "A ServiceNow instance (base_url) with HTTP Basic (username/password), a static OAuth "
    "bearer token (token), or OAuth through oauth_token.do (client_id/client_secret, with "
    "username/password for the password grant).",
    secrets=("password", "token", "client_secret"))
