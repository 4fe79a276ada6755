"""Waiting for Defender's asynchronous machine actions to finish."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from crownguard.engine import ActionContext, ActionError

T = TypeVar("T")

DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_MAX_WAIT = 900.0


def wait_for(ctx: ActionContext, settings: Mapping[str, Any], probe: Callable[[], T | None],
             waiting_for: str) -> T:
    """Call `probe` until it returns a value, sleeping between calls.

    `ctx.sleep` ends the wait at the step's timeout; `max_wait_seconds` bounds steps that have
    none, so a machine action stuck in `Pending` (an offline device) cannot hold a run forever.
    """
    interval = float(settings.get("poll_interval_seconds", DEFAULT_POLL_INTERVAL))
    max_wait = float(settings.get("max_wait_seconds", DEFAULT_MAX_WAIT))
    started = time.monotonic()
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() - started >= max_wait:
            raise ActionError(f"defender: still waiting for {waiting_for} after {max_wait:g}s",
                              retryable=True)
        ctx.sleep(interval)
