"""The `okta` plugin: Okta user look-up, suspension, session and token revocation and group
membership through the Okta Management API, with a stateful Okta mock for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .mock import OktaMock

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["base_url", "token"],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://",
                     "description": "the org URL, e.g. https://acme.okta.com"},
        "token": {"type": "string", "minLength": 1,
                  "description": "an Okta API token, sent as `Authorization: SSWS <token>`"},
        "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
        "connect_timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
    },
}


@hookimpl
def crownguard_register_actions(register: Callable[[Action], None]) -> None:
    for item in ACTIONS:
        register(item)


@hookimpl
def crownguard_register_connection_types(register: Callable[[ConnectionType], None]) -> None:
    register(ConnectionType(
        "okta", CONNECTION_SCHEMA,
        "An Okta org: base_url and an API token (SSWS) of an admin allowed to manage users "
        "and groups.", secrets=("token",)))


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("okta", OktaMock,
                            "Okta Management API: users, lifecycle, sessions, groups."))
