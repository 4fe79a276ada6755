"""The `entra` plugin: Microsoft Entra ID user look-up, session revocation, account disabling
and group membership through Microsoft Graph with app-only tokens, plus a stateful mock of the
token endpoint and Graph for tests and the demo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crownguard.engine import Action, ConnectionType, MockServerSpec, hookimpl

from .actions import ACTIONS
from .mock import EntraMock

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["client_id", "client_secret"],
    "anyOf": [{"required": ["tenant_id"]}, {"required": ["token_url"]}],
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://",
                     "description": "Graph endpoint (default https://graph.microsoft.com; "
                                    "national clouds differ)"},
        "tenant_id": {"type": "string", "minLength": 1,
                      "description": "directory (tenant) id or verified domain"},
        "token_url": {"type": "string", "pattern": "^https?://",
                      "description": "token endpoint (default: https://login.microsoftonline."
                                     "com/{tenant_id}/oauth2/v2.0/token)"},
        "client_id": {"type": "string", "minLength": 1,
                      "description": "the app registration's application (client) id"},
        "client_secret": {"type": "string", "minLength": 1},
        "scope": {"type": "string", "pattern": "/\\.default$",
                  "description": "default https://graph.microsoft.com/.default"},
        "api_version": {"enum": ["v1.0", "beta"], "default": "v1.0"},
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
        "entra", CONNECTION_SCHEMA,
        "A Microsoft Entra ID tenant through Microsoft Graph: an app registration's client id "
        "and secret (client-credentials grant) with application permissions User.Read.All, "
        "User.RevokeSessions.All, User.EnableDisableAccount.All, GroupMember.ReadWrite.All.",
        secrets=("client_secret",)))


@hookimpl
def crownguard_register_mock_servers(register: Callable[[MockServerSpec], None]) -> None:
    register(MockServerSpec("entra", EntraMock,
                            "Entra token endpoint and Microsoft Graph users and groups."))
