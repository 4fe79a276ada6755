"""`crownguard serve --broker redis://...`: the service hands its runs to workers.

Its intake creates each run and enqueues the id (`intake.QueuedRespond`), its timer sweeps
instead of resuming (`sweeper.Sweeper`): nothing of a run is performed in the service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .broker import broker_from
from .intake import QueuedRespond
from .queue import RunQueue
from .sweeper import Sweeper

log = logging.getLogger("crownguard.service")


def hand_runs_to_workers(service: Any, given: str | None) -> Callable[[], None] | None:
    """With a broker (`--broker` or $CROWNGUARD_BROKER), rewire the service's background
    and return what closes it; None (nothing changed) without one."""
    broker = broker_from(given, redactor=service.config.redactor)
    if broker is None:
        return None
    queue = RunQueue(broker)
    respond = QueuedRespond(queue, service.journal)
    service.background.respond = respond
    background = service.background
    background.timer = Sweeper(queue, service.journal, service.host, tick=background.tick,
                               locks=background.locks)
    if not queue.reachable():
        log.warning("the broker %s cannot be reached now: runs are created in the journal "
                    "and sent once it is back", broker.shown)

    def close() -> None:
        respond.close()
        queue.close()
    return close
