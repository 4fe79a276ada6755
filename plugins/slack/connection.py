"""The `slack` connection type: a workspace's bot token (or token rotation) and the app's
signing secret."""

from __future__ import annotations

from typing import Any

from crownguard.engine import CONNECTION_SETTINGS, ConnectionType, connection_schema

DEFAULT_BASE_URL = "https://slack.com/api"

SLACK_CONNECTION_SCHEMA: dict[str, Any] = connection_schema(
    {
        "base_url": {**CONNECTION_SETTINGS["base_url"],
                     "description": f"Web API root; default {DEFAULT_BASE_URL}"},
        "token": {"type": "string", "minLength": 1,
                  "description": "Bot token (xoxb-...); with token rotation the current one"},
        "refresh_token": {"type": "string", "minLength": 1},
        "client_id": {"type": "string", "minLength": 1},
        "client_secret": {"type": "string", "minLength": 1},
        "signing_secret": {"type": "string", "minLength": 1,
                           "description": "Verifies interactivity requests (parse_interaction)"},
    },
    dependentRequired={"refresh_token": ["client_id", "client_secret"]},
)
SLACK_SECRETS = ("token", "refresh_token", "client_secret", "signing_secret")

CONNECTION_TYPE = ConnectionType(
    "slack", SLACK_CONNECTION_SCHEMA,
    "A Slack workspace: a bot token (or token rotation with refresh_token, client_id and "
    "client_secret) and the app's signing_secret for interactivity requests.",
    secrets=SLACK_SECRETS)
