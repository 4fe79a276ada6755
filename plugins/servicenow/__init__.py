"""The `servicenow` plugin: HR cases and incidents through the ServiceNow Table API, exactly one
per incident key, with work notes, look-ups and a close action as the undo.

Registered through the `crownguard` entry point like any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import ServiceNowMock


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
        "servicenow", ServiceNowMock,
        "A ServiceNow instance: Table API (incident, sn_hr_core_case, sys_user) and "
        "oauth_token.do."))
