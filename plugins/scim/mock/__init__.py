"""The SCIM 2.0 service mock (see server.ScimMock)."""

from .server import BASE, TOKEN, ScimMock

__all__ = ["BASE", "TOKEN", "ScimMock"]
