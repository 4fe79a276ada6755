"""The CrowdStrike Falcon mock server (see server.FalconMock)."""

from .base import ALL_SCOPES, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from .server import FalconMock

__all__ = ["ALL_SCOPES", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "FalconMock"]
