"""The sweeper: what the service's timer does when runs are performed by workers.

Without a broker the timer resumes due runs itself (`runs.resume_all`). With one it finds
the same runs, every `running` run that nobody holds (its worker died and the lease lapsed,
or its message was lost, or the broker was down when intake created it) and every waiting
run with an answer or an expired wait to settle, and enqueues their ids instead. A run that
is queued already (its marker is there) is not sent again; a run that failed to resume
RESUME_GIVE_UP_AFTER times the same way is left alone, as `resume --all` leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ... import runs
from ...journal import Journal
from ...plugins import PluginHost
from ...run_results import ResumeAll
from .queue import BrokerUnavailable, RunQueue


@dataclass(frozen=True)
class Swept(ResumeAll):
    """A ResumeAll (the timer's metrics read it) that also says what was enqueued."""

    enqueued: list[str] = field(default_factory=list)
    broker_down: list[str] = field(default_factory=list)  # why the broker was not reached


class Sweeper:
    """`resume_all(journal, host, ...)` for the service's timer with a broker."""

    def __init__(self, queue: RunQueue, *, page_size: int = 500):
        self.queue = queue
        self.page_size = page_size

    def __call__(self, journal: Journal, host: PluginHost, **_: object) -> Swept:
        swept = Swept()
        playbooks = runs.PlaybookCache(host)
        found = runs._candidates(journal, host, playbooks, self.page_size)
        for run, _unreadable in found:
            previous = journal.resume_failures([run.run_id]).get(run.run_id)
            if previous is not None and previous.given_up:
                swept.given_up.append(previous)
                continue
            try:
                if self.queue.enqueue(run.run_id):
                    swept.enqueued.append(run.run_id)
            except BrokerUnavailable as exc:
                swept.broker_down.append(str(exc))
                break  # the next tick tries again
        return swept
