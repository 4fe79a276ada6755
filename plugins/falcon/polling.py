"""Waiting for Falcon's asynchronous work, with this vendor's default pace."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from crownguard.engine import ActionContext

T = TypeVar("T")

DEFAULT_POLL_INTERVAL = 2.0
DEFAULT_MAX_WAIT = 600.0


def wait_for(ctx: ActionContext, settings: Mapping[str, Any], probe: Callable[[], T | None],
             waiting_for: str) -> T:
    """`ctx.poll` with the connection's `poll_interval_seconds` and `max_wait_seconds`."""
    return ctx.poll(probe, interval=float(settings.get("poll_interval_seconds",
                                                       DEFAULT_POLL_INTERVAL)),
                    max_wait=float(settings.get("max_wait_seconds", DEFAULT_MAX_WAIT)),
                    waiting_for=waiting_for, vendor="falcon")
