"""The Microsoft Entra ID mock server (see server.EntraMock)."""

from .base import CLIENT_ID, CLIENT_SECRET, FULL_ACCESS, READ_ONLY, TENANT_DOMAIN, TENANT_ID
from .server import EntraMock

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "FULL_ACCESS", "READ_ONLY", "TENANT_DOMAIN",
           "TENANT_ID", "EntraMock"]
