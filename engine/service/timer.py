"""The service's timer: what `resume --all` settles, found by index instead of by a scan.

Each pass resumes three kinds of run, each under its own run lock (`RunLocks`), so an API
call on another run never waits behind a pass:

- interrupted: `running` with nobody holding its lease (its writer died) - taken over;
- answered: a waiting run with an accepted answer that was recorded but not acted on (the
  process answering it stopped in between) - from the approvals after the last pass;
- expired: a waiting run's wait whose deadline passed - from the journal's open waits, earliest
  first (`Journal.due_waits`).

Nothing is read per waiting run: with 10,000 runs waiting a pass costs a few indexed queries,
and `pause()` says how long to sleep, until the earliest deadline or the tick, whichever
comes first. Under its lock each candidate is looked at again, so a wait that an answer
settled meanwhile is not resumed a second time, and one that is not due yet is not claimed.
With several replicas on one journal each candidate is also held by a `guard`
(`replicas.RunGuard`, an advisory lock per run) from that second look to the resume's end, so
one replica's timer fires a wait: another that saw it due finds it settled, or skips it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from typing import Any

from .. import runs
from ..errors import JournalError, RunsError
from ..journal import Journal
from ..journal.base import lease_holder
from ..journal.waits import OpenWait
from ..kinds import LeaseHolder, RunStatus
from ..plugins import PluginHost
from ..run_results import ResumeAll
from .run_locks import RunLocks

PAGE = 500
# Woken this much after a deadline: the runner then finds the wait expired by its own clock.
LATE = 0.002

EventSink = Callable[[dict[str, Any]], None]
# guard(run_id) as ours: False inside when another replica's timer is acting on the run.
Guard = Callable[[str], AbstractContextManager[bool]]


@contextmanager
def _alone(run_id: str) -> Iterator[bool]:
    yield True


class WaitTimer:
    def __init__(self, journal: Journal, host: PluginHost, locks: RunLocks, *,
                 config_path: str | None, on_event: EventSink | None, tick: float,
                 clock: Callable[[], float] = time.time, guard: Guard | None = None):
        self.journal, self.host, self.locks = journal, host, locks
        self.guard: Guard = guard if guard is not None else _alone
        self.config_path, self.on_event, self.tick, self.clock = config_path, on_event, tick, clock
        self.answers_after = 0  # the last approval seq a pass has looked at
        self._passed_at = float("-inf")  # when the last pass began

    def pause(self) -> float:
        """Seconds until the next pass: the earliest deadline not yet passed, at most a tick.
        A deadline that the last pass saw pass and did not settle (a run that failed or was
        given up on) waits for the tick, not for nothing."""
        upcoming = self.journal.next_wait_deadline()
        if upcoming is None or upcoming <= self._passed_at:
            return self.tick
        return max(min(self.tick, upcoming - self.clock() + LATE), 0.0)

    def settle(self) -> ResumeAll:
        """One pass: every interrupted, answered and expired run resumed (or said why not)."""
        self._passed_at = now = self.clock()
        result = ResumeAll()
        playbooks = runs.PlaybookCache(self.host)
        done: set[str] = set()
        for run_id, due in self._candidates(now):
            if run_id in done:
                continue
            done.add(run_id)
            self._resume(run_id, due, result, playbooks)
        return result

    def _candidates(self, now: float) -> Iterator[tuple[str, Callable[[], bool]]]:
        """(run id, whether it is still due: asked again under the run's lock)."""
        for run in self.journal.interrupted_runs():
            yield run.run_id, partial(self._interrupted, run.run_id)
        while True:
            answered, self.answers_after = self.journal.answered_waits(self.answers_after,
                                                                       limit=PAGE)
            for wait in answered:
                yield wait.run_id, partial(self._still_open, wait, None)
            if len(answered) < PAGE:
                break
        after: OpenWait | None = None
        while page := self.journal.due_waits(now, after=after, limit=PAGE):
            after = page[-1]
            for wait in page:
                yield wait.run_id, partial(self._still_open, wait, now)
            if len(page) < PAGE:
                break

    def _interrupted(self, run_id: str) -> bool:
        run = self.journal.get_run(run_id)
        return run.status == RunStatus.RUNNING and \
            lease_holder(run.owner, run.lease_expires, time.time()) == LeaseHolder.FREE

    def _still_open(self, wait: OpenWait, now: float | None) -> bool:
        """The run still waits on that wait (the same one) and, for a deadline, it passed."""
        if self.journal.get_run(wait.run_id).status != RunStatus.WAITING:
            return False
        for current in self.journal.open_waits(wait.run_id):
            if current.step_id == wait.step_id and current.seq == wait.seq:
                return now is None or (current.expires_at is not None and
                                       current.expires_at <= now)
        return False

    def _resume(self, run_id: str, due: Callable[[], bool], result: ResumeAll,
                playbooks: runs.PlaybookCache) -> None:
        with self.locks.hold(run_id, blocking=False) as mine:
            if not mine:  # an answer, a cancel... is acting on it now: it resumes it itself
                result.skipped.append((run_id, "another operation is acting on it"))
                return
            with self.guard(run_id) as ours:
                if not ours:  # another replica's timer: it looks again and resumes it itself
                    result.skipped.append((run_id, "another replica's timer is acting on it"))
                    return
                self._resume_held(run_id, due, result, playbooks)

    def _resume_held(self, run_id: str, due: Callable[[], bool], result: ResumeAll,
                     playbooks: runs.PlaybookCache) -> None:
        journal = self.journal
        previous = journal.resume_failures([run_id]).get(run_id)
        if previous is not None and previous.given_up:
            result.given_up.append(previous)
            return
        try:
            if not due():
                return
            result.resumed.append(runs.resume(journal, self.host, run_id,
                                              config_path=self.config_path,
                                              on_event=self.on_event, playbooks=playbooks))
        except Exception as exc:
            failure = journal.resume_failures([run_id]).get(run_id)
            if failure is not None and failure != previous:  # recorded by resume
                result.failed.append(failure)
            elif isinstance(exc, RunsError | JournalError):  # taken or ended meanwhile
                result.skipped.append((run_id, str(exc)))
            else:
                raise
