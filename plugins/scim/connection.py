"""The `scim` connection type: a SCIM 2.0 service provider and its bearer token."""

from __future__ import annotations

from typing import Any

from crownguard.engine import CONNECTION_SETTINGS, ConnectionType, connection_schema

SCIM_CONNECTION_SCHEMA: dict[str, Any] = connection_schema({
    "base_url": {**CONNECTION_SETTINGS["base_url"],
                 "description": "the SCIM base URL, e.g. https://app.example.com/scim/v2"},
    "token": {"type": "string", "minLength": 1,
              "description": "bearer token, sent as `Authorization: Bearer <token>`"},
    "patch_style": {"enum": ["path", "value"], "default": "path",
                    "description": "`path`: {op, path: active, value}; `value`: {op, value: "
                                   "{active}} for services that refuse `path`"},
}, required=("base_url", "token"))

CONNECTION_TYPE = ConnectionType(
    "scim", SCIM_CONNECTION_SCHEMA,
    "A SCIM 2.0 service provider: base_url and a bearer token allowed to read and modify "
    "Users.", secrets=("token",))
