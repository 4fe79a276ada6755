"""The `entra` plugin: Microsoft Entra ID user look-up, session revocation, account disabling
and group membership through Microsoft Graph with app-only tokens, plus a stateful mock of the
token endpoint and Graph for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import EntraMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("entra", EntraMock,
                            "Entra token endpoint and Microsoft Graph users and groups."))


__all__ = ["EntraMock"]
