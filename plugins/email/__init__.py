"""The `email` plugin (package crownguard.plugins.email): the nudge by e-mail over SMTP.

Modules inside import each other absolutely (crownguard.plugins.email.*) and are named so that
none shadows the standard library's `email` package, which they use.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl
from crownguard.plugins.email.actions import ACTIONS
from crownguard.plugins.email.connection import CONNECTION_TYPE
from crownguard.plugins.email.mock import SmtpSink


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(CONNECTION_TYPE)


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    # Plain SMTP without AUTH on loopback: the demo needs no certificate.
    register(MockServerSpec("email", partial(SmtpSink, security="none"),
                            "An SMTP submission server that keeps every message it accepts."))
