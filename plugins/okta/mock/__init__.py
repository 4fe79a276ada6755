"""The Okta mock server (see server.OktaMock)."""

from .base import ALL_PERMISSIONS, API_TOKEN, READ_ONLY
from .server import OktaMock

__all__ = ["ALL_PERMISSIONS", "API_TOKEN", "READ_ONLY", "OktaMock"]
