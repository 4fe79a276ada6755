"""The `teams` plugin: Adaptive Card messages to a Teams channel through a Workflows webhook or
a classic incoming webhook."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl
from crownguard.plugins.teams.actions import send_message
from crownguard.plugins.teams.client import TEAMS_CONNECTION_SCHEMA, TEAMS_SECRETS
from crownguard.plugins.teams.mock import TeamsMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    register(send_message)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(ConnectionType(
        "teams", TEAMS_CONNECTION_SCHEMA,
        "One Teams channel's webhook: a Workflows webhook URL (with sig) or a classic incoming "
        "webhook URL. Add more channels as connections with `type: teams`.",
        secrets=TEAMS_SECRETS))


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("teams", TeamsMock,
                            "A Workflows webhook and a classic incoming webhook for Teams."))
