"""The `huggingface` plugin: restrict a Hub repo a leaked model lives in (private, gated, a
user's access rejected), lift the restriction, read a repo. Hookimpls only."""

from __future__ import annotations

from collections.abc import Callable

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import HubMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("huggingface", HubMock,
                            "Hugging Face Hub: repo info and settings, gated access requests "
                            "(paged), tokens with read or write role."))
