"""The `jira` plugin: Jira Cloud issues through REST API v3, exactly one per incident key,
with Markdown turned into Atlassian Document Format, comments, workflow transitions and a close
action as the undo.

Registered through the `crownguard` entry point like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import JiraMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec(
        "jira", JiraMock,
        "A Jira Cloud site: issues, enhanced JQL search, comments, transitions (project SEC)."))
