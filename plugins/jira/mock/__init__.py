"""The Jira Cloud mock server (see server.JiraMock)."""

from .base import INTEGRATION_EMAIL
from .server import JiraMock

__all__ = ["INTEGRATION_EMAIL", "JiraMock"]
