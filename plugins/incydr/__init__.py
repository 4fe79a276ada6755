"""The Code42 Incydr plugin: the alert source.

File events (Forensic Search), sessions and alerts, and the watchlists that say whether a person
is leaving; the `incydr` connection type; the `incydr` event source, which maps Incydr file
events and alerts to ModelMovementEvents for triage; the `incydr` content source, which
fetches a file's first bytes by SHA-256 for triage's content checks; and a stateful mock of
the Incydr API for tests and the demo. Sample file events in Incydr's v2 shape ship in `samples/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crownguard.engine import (
    Action,
    ConnectionType,
    ContentSource,
    EventSource,
    MockServerSpec,
    hookimpl,
)

from .actions import ACTIONS
from .connection import CONNECTION_TYPE
from .mock import IncydrMock


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("incydr", IncydrMock,
                            "Code42 Incydr: OAuth API clients, Forensic Search, sessions, "
                            "alerts, actors and watchlists."))


@hookimpl
def crownguard_register_event_sources(register: Callable[[EventSource], None]) -> None:
    # Imported here: the mapper pulls in the triage wing, which only triage needs.
    from .source import EVENT_SOURCE

    register(EVENT_SOURCE)


@hookimpl
def crownguard_register_content_sources(register: Callable[[ContentSource], None]) -> None:
    from .content import CONTENT_SOURCE

    register(CONTENT_SOURCE)


@hookimpl
def crownguard_register_pollers(register: Callable[..., None]) -> None:
    from .poller import ALERTS_NAME, CONNECTION, NAME, SessionPoll, poll

    register(NAME, connection=CONNECTION, poll=poll)
    register(ALERTS_NAME, connection=CONNECTION, poll=SessionPoll())


__all__: list[Any] = []
