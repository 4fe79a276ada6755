"""Celery's thread pool, waking the worker's event loop whenever a run ends.

With prefetch disabled (queue.celery_app: a worker reserves no message beyond its free slots)
the loop asks Redis for the next message only when it looks again, and nothing tells it that
a slot came free: it looked at its next poll timeout, a second later. Each slot then waited
about a second between runs (1.1 runs/s with one slot, whatever the run cost). This pool
wakes the loop once the finished task is accounted for, so the next message is taken at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.concurrency.thread import ApplyResult, TaskPool


def _nothing() -> None:
    """A callback for the loop: being called is the point (the loop looks again)."""


class WakingThreadPool(TaskPool):
    """`pool="threads"`, with a wake of the event loop after each task's callback."""

    _hub: Any = None

    def register_with_event_loop(self, loop: Any) -> None:
        super().register_with_event_loop(loop)
        self._hub = loop

    def on_apply(self, target: Callable[..., Any], args: tuple[Any, ...] | None = None,
                 kwargs: dict[str, Any] | None = None,
                 callback: Callable[..., Any] | None = None,
                 accept_callback: Callable[..., Any] | None = None, **rest: Any
                 ) -> ApplyResult:
        def done(*given: Any, **named: Any) -> Any:
            try:  # the task is accounted for (no longer reserved) once this returns
                return None if callback is None else callback(*given, **named)
            finally:
                hub = self._hub
                if hub is not None:
                    hub.call_soon(_nothing)
        return super().on_apply(target, args, kwargs, done, accept_callback, **rest)
