"""The `jira` connection type: a Jira Cloud site, how to authenticate to it, and search settings."""

from __future__ import annotations

from typing import Any

from crownguard.engine import CONNECTION_SETTINGS, ConnectionType, connection_schema

from .schemas import PROJECT

JIRA_CONNECTION_SCHEMA: dict[str, Any] = connection_schema(
    {
        "base_url": {**CONNECTION_SETTINGS["base_url"],
                     "description": "https://<site>.atlassian.net"},
        "email": {"type": "string", "minLength": 3},
        "api_token": {"type": "string", "minLength": 1},
        "token": {"type": "string", "minLength": 1,
                  "description": "An OAuth 2.0 bearer token (base_url then is "
                                 "https://api.atlassian.com/ex/jira/<cloudId>)."},
        "default_project": PROJECT,
        "page_size": {"type": "integer", "minimum": 1, "maximum": 100},
        "index_settle_seconds": {
            "type": "number", "minimum": 0, "maximum": 120,
            "description": "On a retried create, how long to keep searching for the issue an "
                           "earlier attempt may have created before creating one (Jira's search "
                           "index lags behind writes). Default 5."},
    },
    required=("base_url",),
    anyOf=[{"required": ["email", "api_token"]}, {"required": ["token"]}],
)

CONNECTION_TYPE = ConnectionType(
    "jira", JIRA_CONNECTION_SCHEMA,
    "A Jira Cloud site (base_url) with an Atlassian account e-mail and API token (or an "
    "OAuth bearer token), an optional default_project and search settings.",
    secrets=("api_token", "token"))
