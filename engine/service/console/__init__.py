"""The web console of `crownguard serve`, under /ui/: server-rendered pages over the same run
operations as the API (docs/console.md)."""

from .routes import mount_console

__all__ = ["mount_console"]
