"""The `teams` plugin: Adaptive Card messages to a Teams channel through a Workflows webhook or
a classic incoming webhook."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl
from crownguard.plugins.teams.actions import ACTIONS
from crownguard.plugins.teams.connection import CONNECTION_TYPE
from crownguard.plugins.teams.mock import TeamsMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("teams", TeamsMock,
                            "A Workflows webhook and a classic incoming webhook for Teams."))
