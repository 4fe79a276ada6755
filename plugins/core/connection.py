"""The `http` connection type: the outbound hosts core.http_request may call."""

from __future__ import annotations

from crownguard.engine import HTTP_CONNECTION_SCHEMA, ConnectionType

CONNECTION_TYPE = ConnectionType(
    "http", HTTP_CONNECTION_SCHEMA,
    "Outbound hosts core.http_request may call (allowed_hosts: host, host:port or "
    "*.domain), with optional timeouts.")
