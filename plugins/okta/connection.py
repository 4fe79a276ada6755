"""The `okta` connection type: an Okta org, and either the API token of an admin or an OAuth
service app with a private-key JWT (the credential Okta recommends for machine access)."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    CLIENT_ASSERTION_SETTINGS,
    CONNECTION_SETTINGS,
    TOKEN_URL_SETTING,
    ConnectionType,
    connection_schema,
)

DEFAULT_SCOPES = "okta.users.manage okta.groups.manage"

OKTA_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "the org URL, e.g. https://acme.okta.com"},
    "token": {"type": "string", "minLength": 1,
              "description": "an Okta API token, sent as `Authorization: SSWS <token>`"},
    "client_id": {"type": "string", "minLength": 1,
                  "description": "instead of token: the client id of an API service app"},
    "private_key": {**CLIENT_ASSERTION_SETTINGS["private_key"],
                    "description": "the service app's private key (PEM, by reference: "
                                   "${file:...}); signs the client assertion"},
    "key_id": {**CLIENT_ASSERTION_SETTINGS["key_id"],
               "description": "the `kid` of the app's public key in Okta (needed when the app "
                              "has more than one)"},
    "scopes": {"type": "string", "pattern": "^okta\\.[a-zA-Z.]+( okta\\.[a-zA-Z.]+)*$",
               "description": f"the Okta API scopes granted to the app, space-separated "
                              f"(default {DEFAULT_SCOPES}; .manage includes .read)"},
    "token_url": {**TOKEN_URL_SETTING,
                  "description": "the org authorization server's token endpoint (default "
                                 "<base_url>/oauth2/v1/token)"},
}, required=("base_url",),
    # An API token, or a service app (client_id and private_key); not both (checked at load).
    **{"if": {"required": ["private_key"]}, "then": {"required": ["client_id"]},
       "else": {"required": ["token"]}})

CONNECTION_TYPE = ConnectionType(
    "okta", OKTA_CONNECTION_SCHEMA,
    "An Okta org: base_url and an API token (SSWS) of an admin allowed to manage users "
    "and groups, or an API service app (client_id, private_key) granted the okta.users.manage "
    "and okta.groups.manage scopes.", secrets=("token", "private_key"))
