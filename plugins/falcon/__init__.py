"""The `falcon` plugin: CrowdStrike Falcon host look-up, network containment and Real Time
Response file quarantine, with a stateful mock of the Falcon API for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import FalconMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("falcon", FalconMock,
                            "CrowdStrike Falcon API: hosts, containment, Real Time Response."))


__all__ = ["FalconMock"]
