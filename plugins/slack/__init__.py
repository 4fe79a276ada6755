"""The `slack` plugin: nudge an employee by direct message, post to a SOC channel, and read the
employee's answer back from Slack's signed interactivity request (`crownguard slack-answer`)."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl
from crownguard.plugins.slack import commands, receiver
from crownguard.plugins.slack.actions import ACTIONS
from crownguard.plugins.slack.connection import CONNECTION_TYPE
from crownguard.plugins.slack.mock import SlackMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_commands(register: Callable[..., None]) -> None:
    register(commands.NAME, help=commands.HELP, configure=commands.configure, run=commands.run)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("slack", SlackMock,
                            "Slack Web API: users, DMs, channels, messages, token rotation."))


@hookimpl
def crownguard_register_interaction_receivers(register: Callable[..., None]) -> None:
    register(receiver.NAME, verify=receiver.verify, resolve=receiver.resolve)
