"""The Slack Web API mock server (see server.SlackMock)."""

from .base import ALL_SCOPES
from .server import SlackMock

__all__ = ["ALL_SCOPES", "SlackMock"]
