"""The ServiceNow instance mock (see server.ServiceNowMock)."""

from .base import INTEGRATION_USER, OAUTH_CLIENT_ID
from .server import ServiceNowMock

__all__ = ["INTEGRATION_USER", "OAUTH_CLIENT_ID", "ServiceNowMock"]
