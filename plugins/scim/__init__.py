"""The `scim` plugin: deactivate and reactivate users at any SCIM 2.0 service provider
(RFC 7644 PATCH), with a stateful SCIM service mock for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .mock import ScimMock

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["base_url", "token"],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://",
                     "description": "the SCIM base URL, e.g. https://app.example.com/scim/v2"},
        "token": {"type": "string", "minLength": 1,
                  "description": "bearer token, sent as `Authorization: Bearer <token>`"},
        "patch_style": {"enum": ["path", "value"], "default": "path",
                        "description": "`path`: {op, path: active, value}; `value`: {op, value: "
                                       "{active}} for services that refuse `path`"},
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
        "scim", CONNECTION_SCHEMA,
        "A SCIM 2.0 service provider: base_url and a bearer token allowed to read and modify "
        "Users.", secrets=("token",)))


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("scim", ScimMock,
                            "A SCIM 2.0 service (Users, filters, PatchOp, ETags)."))
