"""The `entra` connection type: an Entra ID tenant through Microsoft Graph and an app
registration's client credentials."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    CLIENT_ASSERTION_SETTINGS,
    CONNECTION_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

ENTRA_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "Graph endpoint (default https://graph.microsoft.com; "
                                "national clouds differ)"},
    "tenant_id": {"type": "string", "minLength": 1,
                  "description": "directory (tenant) id or verified domain"},
    "token_url": {**TOKEN_URL_SETTING,
                  "description": "token endpoint (default: https://login.microsoftonline."
                                 "com/{tenant_id}/oauth2/v2.0/token)"},
    "client_id": {"type": "string", "minLength": 1,
                  "description": "the app registration's application (client) id"},
    "client_secret": {"type": "string", "minLength": 1,
                      "description": "the app's client secret (or private_key and certificate)"},
    "private_key": {**CLIENT_ASSERTION_SETTINGS["private_key"],
                    "description": "instead of client_secret: the private key of a certificate "
                                   "uploaded to the app registration, by reference "
                                   "(${file:...}); signs a client assertion"},
    "certificate": {**CLIENT_ASSERTION_SETTINGS["certificate"],
                    "description": "the certificate uploaded to the app registration (PEM, by "
                                   "reference); Entra finds the key by its thumbprint"},
    "scope": {"type": "string", "pattern": "/\\.default$",
              "description": "default https://graph.microsoft.com/.default"},
    "api_version": {"enum": ["v1.0", "beta"], "default": "v1.0"},
}, required=("client_id",),
    anyOf=[{"required": ["tenant_id"]}, {"required": ["token_url"]}],
    # A client secret, or a certificate credential (its key and the certificate itself); the
    # load-time check refuses both at once. Written as if/then/else so a missing one is named.
    **{"if": {"required": ["private_key"]}, "then": {"required": ["certificate"]},
       "else": {"required": ["client_secret"]}})

CONNECTION_TYPE = ConnectionType(
    "entra", ENTRA_CONNECTION_SCHEMA,
    "A Microsoft Entra ID tenant through Microsoft Graph: an app registration's client id "
    "and secret, or a certificate's private key (client-credentials grant) with "
    "application permissions User.Read.All, User.RevokeSessions.All, "
    "User.EnableDisableAccount.All, GroupMember.ReadWrite.All.",
    secrets=("client_secret", "private_key"))
