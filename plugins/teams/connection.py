"""The `teams` connection type: one Teams channel's webhook URL (itself the credential)."""

from __future__ import annotations

from typing import Any

from crownguard.engine import ConnectionType, connection_schema

# A webhook URL is the whole address: there is no API root (base_url) beside it.
TEAMS_CONNECTION_SCHEMA: dict[str, Any] = connection_schema(
    {
        "webhook_url": {"type": "string", "pattern": "^https?://",
                        "description": "A Workflows webhook URL (with its sig) or a classic "
                                       "incoming webhook URL"},
    },
    required=("webhook_url",), base_url=False)
TEAMS_SECRETS = ("webhook_url",)

CONNECTION_TYPE = ConnectionType(
    "teams", TEAMS_CONNECTION_SCHEMA,
    "One Teams channel's webhook: a Workflows webhook URL (with sig) or a classic incoming "
    "webhook URL. Add more channels as connections with `type: teams`.",
    secrets=TEAMS_SECRETS)
