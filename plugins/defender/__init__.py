"""The `defender` plugin: Microsoft Defender for Endpoint machine look-up, isolation and file
quarantine, with a stateful mock of the Defender API and its Entra token endpoint."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import DefenderMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("defender", DefenderMock,
                            "Microsoft Defender for Endpoint API with its Entra token endpoint: "
                            "machines, machine actions, file profiles."))


__all__ = ["DefenderMock"]
