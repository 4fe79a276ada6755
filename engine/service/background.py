"""What the service does between requests: the intake worker and the timer.

The intake worker takes pending intake items and triages and responds to each
(`triage.respond.respond`), at most `workers` at a time, and marks each done with the runs it
started. The timer (`timer.WaitTimer`) settles each wait at its deadline, found by the journal's
index of open waits, sleeping until the earliest one (at most `tick` seconds), and takes over a
run whose writer died (its lease lapsed). Every operation on a run (the timer's, an answer, a
cancel) holds that run's lock (`run_locks.RunLocks`): one thread drives a run at a time, and
operations on different runs do not wait for each other.

Two more threads: the answers thread records the chat interactions a request verified and
stored (a Slack click is answered 200 at once; who clicked is asked of Slack and the answer
recorded here), and, with service.incydr_poll, the poller thread feeds intake.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, cast

from .. import runs
from ..config import Config
from ..errors import ConfigError, JournalUnavailable, UnknownRun
from ..journal import Journal
from ..kinds import EventType, RunStatus
from ..plugins import PluginHost
from ..triage import Triage, dedupe_key, event_from_dict
from ..triage.respond import respond
from .intake import IntakeItem, IntakeStore
from .logs import bound
from .metrics import ServiceMetrics
from .observe import RunMetrics
from .poller import IntakePoller, PollerGroup
from .replicas import ExclusivePoller, run_guard
from .run_locks import RunLocks
from .timer import WaitTimer

log = logging.getLogger("crownguard.service")


class _OnePerPerson:
    """A Triage whose triage_event runs one at a time per person (the event's actor): a
    person's score reads their risk history and then records the event in it, so two of one
    person's events must not interleave (the second would miss the first's volume and
    violation); different people's events go on side by side. Locks are striped by person, so
    their number stays fixed however many people the feed brings.

    The claim needs no lock of ours: the dedupe store claims in one transaction (SQLite's
    BEGIN IMMEDIATE, PostgreSQL's row lock), correct across threads and processes alike."""

    STRIPES = 64

    def __init__(self, triage: Triage):
        self._triage = triage
        self._stripes = [threading.Lock() for _ in range(self.STRIPES)]

    def triage_event(self, event: Any, *args: Any, **kwargs: Any) -> Any:
        person = getattr(getattr(event, "actor", None), "email", None)
        with self._stripes[hash(person) % self.STRIPES]:
            return self._triage.triage_event(event, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # The rest (claim, its router, whose dedupe store is thread-safe) is the wrapped one's.
        return getattr(self._triage, name)


class _ClaimsAsItem:
    """A Triage whose claims name the intake item this thread is processing (`processing`,
    set by `_process_bound`): an item taken again after a kill -9 finds the dedupe claim it
    left for its own, not a duplicate, and either names its run that reached the journal or,
    if none did, starts it now (`Router.claim`). `respond` and a hand-off to workers both
    claim through `triage.claim(verdict)`, so both claim so."""

    def __init__(self, triage: Triage, journal: Journal):
        self._triage, self._journal = triage, journal
        self._local = threading.local()  # each intake worker thread, one item at a time

    def processing(self, item: IntakeItem) -> None:
        self._local.claimant = item.claimant

    def triage_event(self, event: Any, **kwargs: Any) -> Any:
        # Its own claim is no duplicate at triage either: the run is checked, then claimed.
        return self._triage.triage_event(
            event, **kwargs, claimant=getattr(self._local, "claimant", None))

    def claim(self, verdict: Any) -> Any:
        return self._triage.claim(verdict, claimant=getattr(self._local, "claimant", None),
                                  run_exists=self._in_journal)

    def _in_journal(self, run_id: str) -> bool:
        try:
            self._journal.get_run(run_id)
        except UnknownRun:
            return False
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._triage, name)


def _log_run(record: dict[str, Any]) -> None:
    """One line per run an event started: its status, and why a failed one failed."""
    steps = record.get("steps") or {}
    errors = [f"{sid}: {step.get('error')}" for sid, step in steps.items()
              if isinstance(step, dict) and step.get("error")]
    with bound(run_id=record.get("run_id"), step_id=None, playbook=record.get("playbook")):
        if record.get("status") == "failed":
            log.warning("run %s of %s failed: %s", record.get("run_id"), record.get("playbook"),
                        "; ".join(errors) or "(no step error)")
        else:
            log.info("run %s of %s: %s", record.get("run_id"), record.get("playbook"),
                     record.get("status"))


class Background:
    def __init__(self, store: IntakeStore, journal: Journal, host: PluginHost, config: Config,
                 triage: Triage, metrics: ServiceMetrics, *, config_path: str | None,
                 workers: int, tick: float, locks: RunLocks | None = None):
        self.store, self.journal, self.host, self.config = store, journal, host, config
        self._claims = _ClaimsAsItem(triage, journal)
        self.triage = cast(Triage, _OnePerPerson(cast(Triage, self._claims)))
        self.metrics = metrics
        # Runs ended, step durations and vendor errors of every run this process drives.
        self.observe = RunMetrics(metrics, lambda name: triage.router.playbooks.get(name),
                                  lambda run_id: journal.get_run(run_id).playbook)
        self.config_path = config_path
        self.workers = workers
        self.tick = tick
        self.locks = locks if locks is not None else RunLocks()  # the API's operations too
        self.guard = run_guard(journal)  # one timer firing per wait across replicas
        self.timer = WaitTimer(journal, host, self.locks, config_path=config_path,
                               on_event=self._observed, tick=tick, guard=self.guard.hold)
        self._timer_wake = threading.Event()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="crownguard-intake")
        self._inflight: dict[int, Future[None]] = {}
        self._inflight_lock = threading.Lock()
        # Items the database's absence interrupted, with the runs they started and when to
        # try again: settled (`_settle_later`) once it answers.
        self._interrupted: list[tuple[IntakeItem, list[str], float]] = []
        self._threads: list[threading.Thread] = []
        self._answer_wake = threading.Event()
        self.poller: IntakePoller | PollerGroup | ExclusivePoller | None = None
        # A click on an access request's buttons (slack.answer_access_click); None otherwise.
        self.access_answers: Callable[[dict[str, Any]], Any] | None = None
        # How runs start: here, or handed to workers (serve --broker: worker/serving.py, which
        # also puts a sweeper in the timer's place).
        self.respond: Callable[..., list[Any]] = respond
        metrics.dead_letter_counts = store.dead_letter_counts

    def start(self) -> None:
        jobs: list[tuple[str, Callable[[], None]]] = [
            ("intake", self._dispatch), ("timer", self._timer), ("answers", self._answer)]
        if self.poller is not None:
            poller = self.poller
            self.metrics.poller_lag = poller.lag_seconds
            jobs.append(("poller", lambda: poller.run(self._stop, self.wake)))
        for name, target in jobs:
            if name == "intake" and self.workers < 1:
                log.warning("intake workers: 0: events are stored, none is processed")
                continue
            thread = threading.Thread(target=target, name=f"crownguard-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """New items are stored: take them now rather than at the next poll."""
        self._wake.set()

    # intake -------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._inflight_lock:
                free = self.workers - len(self._inflight)
            if free > 0:
                free -= self._settle_interrupted(free)
            if free > 0:
                try:
                    items = self.store.take(free)
                except Exception as exc:
                    log.error("intake: cannot take items: %s", exc)
                    items = []
                for item in items:
                    self._submit(item.id, self._process, item)
                if items:
                    continue
            self._wake.wait(1.0)
            self._wake.clear()

    def _submit(self, item_id: int, work: Callable[..., None], *args: Any) -> None:
        with self._inflight_lock:
            future = self._pool.submit(work, *args)
            self._inflight[item_id] = future
        future.add_done_callback(self._done_callback(item_id))

    def _settle_interrupted(self, free: int) -> int:
        """Hand the interrupted items that are due to the workers again; how many."""
        now = time.monotonic()
        with self._inflight_lock:
            due = [entry for entry in self._interrupted if entry[2] <= now][:free]
            self._interrupted = [entry for entry in self._interrupted if entry not in due]
        for item, run_ids, _ in due:
            self._submit(item.id, self._settle_later, item, run_ids)
        return len(due)

    def _interrupt(self, item: IntakeItem, run_ids: list[str], exc: Exception) -> None:
        """The database went away while the item was processed: nothing about it is decided
        (a JournalUnavailable). Kept, still started by this process, to be settled later."""
        log.warning("intake item %s (%s event %s): the journal's database is unreachable, "
                    "tried again shortly: %s", item.id, item.source, item.event_id,
                    self.config.redactor.redact(str(exc))[:300])
        with self._inflight_lock:
            self._interrupted.append((item, run_ids, time.monotonic() + 1.0))

    def _settle_later(self, item: IntakeItem, run_ids: list[str]) -> None:
        """An interrupted item, once the database answers: the runs it started are driven on
        where they stopped (as the timer takes over a run whose writer died; a finished step
        is not run again) and the item finished with them; one that started no run is pending
        again, to be responded to afresh (the dedupe claim keeps a second run from starting)."""
        with bound(intake_item=item.id, source=item.source, event_id=item.event_id):
            try:
                run_ids = run_ids or self._claimed_runs(item)
                for run_id in run_ids:
                    if self.journal.get_run(run_id).status == RunStatus.RUNNING:
                        with self.locks.hold(run_id):
                            _log_run(runs.resume(self.journal, self.host, run_id,
                                                 config_path=self.config_path,
                                                 on_event=self._observed).record)
                if run_ids:
                    self.store.finish(item.id, run_ids)
                    self.metrics.intake_processed.labels(outcome="done").inc()
                else:
                    self.store.release([item.id])
                    self._wake.set()
            except JournalUnavailable as exc:
                self._interrupt(item, run_ids, exc)
            except Exception as exc:
                reason = self.config.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]
                log.error("intake item %s: its runs %s could not be driven on: %s", item.id,
                          ", ".join(run_ids), reason)
                self._finish_failed(item, reason, run_ids)

    def _claimed_runs(self, item: IntakeItem) -> list[str]:
        """The runs of the item's event that its dedupe claims name (a run is created before
        its first events are stored, and those may be what the database's absence lost); a
        claim of this event whose run was never created is released, so that responding to
        the event afresh starts it rather than calling it a duplicate."""
        router = self.triage.router
        if router.window_seconds <= 0:
            return []
        event = event_from_dict(item.event, origin=f"intake item {item.id}")
        at = event.time.timestamp()  # what respond claims with
        found: list[str] = []
        for name in router.playbooks:
            key = dedupe_key(name, event)
            run_id = router.store.run_of(key)
            if run_id is not None:
                try:
                    inputs = self.journal.get_run(run_id).inputs
                except UnknownRun:
                    run_id = None
                else:
                    if (inputs.get("event") or {}).get("id") == item.event_id:
                        found.append(run_id)
                    continue
            if router.store.last_start(key, at, router.window_seconds) == at:
                router.store.release(key, at)  # claimed by this event, its run never made
        return found

    def _done_callback(self, item_id: int) -> Callable[[Future[None]], None]:
        def done(_: Future[None]) -> None:
            with self._inflight_lock:
                self._inflight.pop(item_id, None)
            self._wake.set()
        return done

    def _process(self, item: IntakeItem) -> None:
        with bound(intake_item=item.id, source=item.source, event_id=item.event_id):
            self._process_bound(item)

    def _process_bound(self, item: IntakeItem) -> None:
        self._claims.processing(item)
        run_ids: list[str] = []  # the runs it started, seen as their first events are stored

        def observed(event: dict[str, Any]) -> None:
            if event.get("type") == EventType.RUN_STARTED and event.get("run_id"):
                run_ids.append(str(event["run_id"]))
            self._observed(event)

        try:
            event = event_from_dict(item.event, origin=f"intake item {item.id}")
            responses = self.respond(self.triage, self.host, self.config, [event],
                                     journal=self.journal, on_event=observed)
            started = [r for response in responses for r in response.runs]
            for record in started:
                self.metrics.runs_started.labels(playbook=str(record.get("playbook"))).inc()
            # Done only now that its runs are in the journal (they were created before they
            # ran); a run an earlier attempt left is the item's too.
            continued = [run for response in responses for run in response.continued]
            self.store.finish(item.id, [str(r["run_id"]) for r in started] + continued,
                              outcome="; ".join(r.outcome() for r in responses))
            for record in started:
                _log_run(record)
            self.metrics.intake_processed.labels(outcome="done").inc()
        except JournalUnavailable as exc:  # not the item's fault: kept, to be settled later
            self._interrupt(item, run_ids, exc)
        except Exception as exc:  # one bad item is set aside; the rest go on
            reason = self.config.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]
            log.error("intake item %s (%s event %s) failed: %s", item.id, item.source,
                      item.event_id, reason)
            self._finish_failed(item, reason, [])

    def _finish_failed(self, item: IntakeItem, reason: str, run_ids: list[str]) -> None:
        self.metrics.intake_processed.labels(outcome="failed").inc()
        try:
            self.store.finish(item.id, run_ids, error=reason)
        except Exception as again:
            log.error("intake item %s: cannot record the failure: %s", item.id, again)

    # chat interactions (a Slack click), stored by the request -----------------------------------

    def interaction_stored(self) -> None:
        """A verified interaction is in the table: record it now."""
        self._answer_wake.set()

    def _answer(self) -> None:
        while not self._stop.is_set():  # those not taken stay pending for the next process
            try:
                item = self.store.take_interaction()
            except Exception as exc:
                log.error("interactions: cannot take one: %s", exc)
                item = None
            if item is None:
                self._answer_wake.wait(0.5)
                self._answer_wake.clear()
                continue
            self._settle_interaction(*item)

    def _settle_interaction(self, item_id: int, name: str, parsed: dict[str, Any]) -> None:
        """Ask the receiver who answered (Slack's users.info), then answer the waiting step as
        them (`runs.answer`, as `crownguard approve`) and let the run go on."""
        redact = self.config.redactor.redact
        where = f"{name} interaction {item_id} (run {parsed.get('run_id')} step " \
                f"{parsed.get('step_id')})"
        receiver = self.host.interaction_receivers.get(name)
        try:
            if receiver is None:
                raise ConfigError(f"no installed plugin receives '{name}' interactions")
            reply = receiver.resolve(self.config.connections, parsed)
            if reply.get("note"):
                log.warning("%s: answering as %s alone: %s", where, reply["by"],
                            redact(str(reply["note"])))
            result = self.access_answers(reply) if self.access_answers else None
            if result is None:
                with self.operation(str(reply["run_id"])):
                    result = runs.answer(self.journal, self.host, str(reply["run_id"]),
                                         str(reply["step_id"]), str(reply["decision"]),
                                         by=str(reply["by"]), comment=reply.get("comment"),
                                         aliases=[str(a) for a in reply.get("aliases") or ()],
                                         config_path=self.config_path, on_event=self._observed)
        except Exception as exc:  # not waiting any more, no such run...: said, kept, counted
            reason = redact(f"{type(exc).__name__}: {exc}")[:500]
            self.metrics.slack_interactions.labels("failed").inc()
            log.warning("%s: the answer was not recorded: %s", where, reason)
            self._finish_interaction(item_id, reason)
            return
        if result.accepted:
            self.metrics.slack_interactions.labels("accepted").inc()
            log.info("%s: answered by %s", where, result.by)
        else:
            self.metrics.slack_interactions.labels("refused").inc()
            log.warning("%s: refused and recorded: %s", where, result.reason)
        self._finish_interaction(item_id, None)

    def _finish_interaction(self, item_id: int, error: str | None) -> None:
        try:
            self.store.finish_interaction(item_id, error)
        except Exception as exc:
            log.error("interaction %s: cannot record how it ended: %s", item_id, exc)

    # the timer ----------------------------------------------------------------------------------

    @contextmanager
    def operation(self, run_id: str) -> Iterator[str]:
        """Hold the run's lock (the run named by id or unique prefix) for an operation on it;
        the full run id is given to the block."""
        full = runs.find_run(self.journal, run_id).run_id
        with self.locks.hold(full):
            yield full

    def _observed(self, event: dict[str, Any]) -> None:
        """Every event of the runs this process drives: metrics, and a wait with a deadline
        wakes the timer (it may now be the earliest one)."""
        self.observe(event)
        if event.get("type") == EventType.STEP_WAITING and event.get("expires_at"):
            self._timer_wake.set()

    def _timer(self) -> None:
        pause = 0.0  # a first pass at once: runs a crashed process left are taken over now
        while not self._stop.is_set():
            self._timer_wake.wait(pause)
            self._timer_wake.clear()
            if self._stop.is_set():
                return
            try:
                self.settle()
                pause = self.timer.pause()
            except Exception as exc:
                log.error("timer: %s", self.config.redactor.redact(str(exc)))
                pause = self.tick

    def settle(self) -> runs.ResumeAll:
        """Resume what is due now: expired waits, answered waits, runs whose writer died."""
        with bound():
            done = self.timer.settle()
        self.metrics.waits_settled.inc(len(done.resumed))
        self.metrics.timer_failures.inc(len(done.failed))
        for failure in done.failed:
            log.warning("timer: run %s could not be resumed (%s): %s", failure.run_id,
                        failure.kind, failure.reason)
        return done

    # stopping -----------------------------------------------------------------------------------

    def stop(self, grace: float) -> bool:
        """Take no more items; let those in progress finish within `grace` seconds. Those
        that do not are handed back (pending again for the next process); False then."""
        self._stop.set()
        self._timer_wake.set()
        self._wake.set()
        self._answer_wake.set()
        for thread in self._threads:
            thread.join(timeout=max(grace, 1.0))
        with self._inflight_lock:
            inflight = dict(self._inflight)
        _, unfinished = wait(list(inflight.values()), timeout=grace)
        left = [item_id for item_id, future in inflight.items() if future in unfinished]
        if left:
            log.warning("drain: %d intake item(s) still running after %.0f s: handed back",
                        len(left), grace)
            self.store.release(left)
        with self._inflight_lock:
            interrupted = [item.id for item, _, _ in self._interrupted]
        if interrupted:  # pending again for the next process (its runs: taken over there)
            try:
                self.store.release(interrupted)
            except Exception as exc:
                log.error("drain: cannot hand back %d interrupted intake item(s): %s",
                          len(interrupted), exc)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.guard.close()
        return not left
