"""The Microsoft Defender for Endpoint mock server (see server.DefenderMock)."""

from .base import ALL_ROLES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, TENANT_ID
from .server import DefenderMock

__all__ = ["ALL_ROLES", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "TENANT_ID", "DefenderMock"]
