"""The Code42 Incydr mock server (see server.IncydrMock)."""

from .server import IncydrMock

__all__ = ["IncydrMock"]
