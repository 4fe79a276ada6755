"""The `crownguard` command: argument parsing and printing only (entry point `main`)."""

from .app import main

__all__ = ["main"]
