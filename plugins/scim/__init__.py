"""The `scim` plugin: deactivate and reactivate users at any SCIM 2.0 service provider
(RFC 7644 PATCH), with a stateful SCIM service mock for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import ScimMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("scim", ScimMock,
                            "A SCIM 2.0 service (Users, filters, PatchOp, ETags)."))


__all__ = ["ScimMock"]
