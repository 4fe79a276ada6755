"""The sweeper: what the service's timer does when runs are performed by workers.

Without a broker the timer (`timer.WaitTimer`) resumes due runs itself. With one it finds the
same runs by the same index, every `running` run that nobody holds (its worker died and the
lease lapsed, or its message was lost, or the broker was down when intake created it), every
waiting run with an answer recorded but not acted on, and every wait whose deadline passed,
and enqueues their ids instead. A run that is queued already (its marker is there) is not sent
again; a run that failed to resume RESUME_GIVE_UP_AFTER times the same way is left alone, as
`resume --all` leaves it. While the broker is away nothing is lost: the pass stops, and the
answers it had read are read again at the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...journal import Journal
from ...plugins import PluginHost
from ...run_results import ResumeAll
from ..run_locks import RunLocks
from ..timer import WaitTimer
from .queue import BrokerUnavailable, RunQueue


@dataclass(frozen=True)
class Swept(ResumeAll):
    """A ResumeAll (the timer's metrics read it) that also says what was enqueued."""

    enqueued: list[str] = field(default_factory=list)
    broker_down: list[str] = field(default_factory=list)  # why the broker was not reached


class _BrokerDown(Exception):
    """Ends a pass: the next one tries again."""


class Sweeper(WaitTimer):
    """A `WaitTimer` whose pass enqueues due runs rather than resuming them."""

    def __init__(self, queue: RunQueue, journal: Journal, host: PluginHost, *,
                 tick: float = 1.0, locks: RunLocks | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(journal, host, locks if locks is not None else RunLocks(),
                         config_path=None, on_event=None, tick=tick, clock=clock)
        self.queue = queue

    def settle(self) -> Swept:
        swept = Swept()
        answers_from = self.answers_after
        self._passed_at = now = self.clock()
        try:
            done: set[str] = set()
            for run_id, due in self._candidates(now):
                if run_id not in done:
                    done.add(run_id)
                    self._send(run_id, due, swept)
        except _BrokerDown:
            self.answers_after = answers_from  # those answers are read again next time
        return swept

    def _send(self, run_id: str, due: Callable[[], bool], swept: Swept) -> None:
        previous = self.journal.resume_failures([run_id]).get(run_id)
        if previous is not None and previous.given_up:
            swept.given_up.append(previous)
            return
        if not due():  # settled, answered or taken meanwhile
            return
        try:
            if self.queue.enqueue(run_id):
                swept.enqueued.append(run_id)
        except BrokerUnavailable as exc:
            swept.broker_down.append(str(exc))
            raise _BrokerDown from None
