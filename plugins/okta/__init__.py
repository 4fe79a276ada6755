"""The `okta` plugin: Okta user look-up, suspension, session and token revocation and group
membership through the Okta Management API, with a stateful Okta mock for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import OktaMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("okta", OktaMock,
                            "Okta Management API: users, lifecycle, sessions, groups."))


__all__ = ["OktaMock"]
