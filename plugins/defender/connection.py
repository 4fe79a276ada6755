"""The `defender` connection type: the Defender for Endpoint API and its Entra app."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    CLIENT_ASSERTION_SETTINGS,
    CONNECTION_SETTINGS,
    POLLING_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

DEFAULT_BASE_URL = "https://api.securitycenter.microsoft.com"
DEFAULT_SCOPE = "https://api.securitycenter.microsoft.com/.default"
AUTHORITY = "https://login.microsoftonline.com"

DEFENDER_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "API host (default https://api.securitycenter.microsoft.com; "
                                "regional hosts such as https://eu.api.security.microsoft.com "
                                "work too)"},
    "tenant_id": {"type": "string", "minLength": 1, "description": "Entra tenant id or domain"},
    "token_url": {**TOKEN_URL_SETTING, "description": "Entra token endpoint (default: "
                                                      "https://login.microsoftonline.com/"
                                                      "<tenant_id>/oauth2/v2.0/token)"},
    "client_id": {"type": "string", "minLength": 1},
    "client_secret": {"type": "string", "minLength": 1,
                      "description": "the app's client secret (or private_key and certificate)"},
    "private_key": {**CLIENT_ASSERTION_SETTINGS["private_key"],
                    "description": "instead of client_secret: the private key of a certificate "
                                   "uploaded to the app registration, by reference "
                                   "(${file:...}); signs a client assertion"},
    "certificate": {**CLIENT_ASSERTION_SETTINGS["certificate"],
                    "description": "the certificate uploaded to the app registration (PEM, by "
                                   "reference); Entra finds the key by its thumbprint"},
    "scope": {"type": "string", "minLength": 1,
              "description": f"OAuth2 scope (default {DEFAULT_SCOPE})"},
    "poll_interval_seconds": {**POLLING_SETTINGS["poll_interval_seconds"],
                              "description": "wait between machine-action polls (default 5)"},
    "max_wait_seconds": {**POLLING_SETTINGS["max_wait_seconds"],
                         "description": "give up waiting for a machine action after this long "
                                        "(default 900; the step timeout also bounds it)"},
}, required=("client_id",),
    anyOf=[{"required": ["tenant_id"]}, {"required": ["token_url"]}],
    # A client secret, or a certificate credential (its key and the certificate itself); the
    # load-time check refuses both at once. Written as if/then/else so a missing one is named.
    **{"if": {"required": ["private_key"]}, "then": {"required": ["certificate"]},
       "else": {"required": ["client_secret"]}})

CONNECTION_TYPE = ConnectionType(
    "defender", DEFENDER_CONNECTION_SCHEMA,
    "Microsoft Defender for Endpoint API through an Entra app (client credentials: a "
    "secret, or a certificate's private key). "
    "Application permissions: Machine.Read.All, Machine.Isolate, Machine.StopAndQuarantine, "
    "File.Read.All.",
    secrets=("client_secret", "private_key"))
