"""The built-in `core` plugin: generic HTTP, no-op and transform actions, the `http`
connection type and a webhook receiver mock. Registered through the same `crownguard` entry
point as any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import WebhookMock

PLAYBOOKS = Path(__file__).parent / "playbooks"


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("webhook", WebhookMock,
                            "A generic webhook receiver that records what it is sent.",
                            connection="http"))


@hookimpl
def crownguard_register_playbooks(register: Callable[[Path], None]) -> None:
    for path in sorted(PLAYBOOKS.glob("*.yaml")):
        register(path)


__all__: list[Any] = []
