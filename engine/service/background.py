"""What the service does between requests: the intake worker and the timer.

The intake worker takes pending intake items and triages and responds to each
(`triage.respond.respond`), at most `workers` at a time, and marks each done with the runs it
started. The timer calls `runs.resume_all` every `tick` seconds: a wait whose deadline passed is
settled, and a run whose writer died (its lease lapsed) is taken over and finished.

Two more threads: the answers thread records the chat interactions a request verified and
stored (a Slack click is answered 200 at once; who clicked is asked of Slack and the answer
recorded here), and, with service.incydr_poll, the poller thread feeds intake.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, cast

from .. import runs
from ..config import Config
from ..errors import ConfigError
from ..journal import Journal
from ..plugins import PluginHost
from ..triage import Triage, event_from_dict
from ..triage.respond import respond
from .intake import IntakeItem, IntakeStore
from .logs import bound
from .metrics import ServiceMetrics
from .observe import RunMetrics
from .poller import IntakePoller

log = logging.getLogger("crownguard.service")


class _OneAtATime:
    """A Triage whose triage_event runs under a lock: its score cache and history are not
    shared safely between threads; the runs it chooses then go on in parallel."""

    def __init__(self, triage: Triage):
        self._triage = triage
        self._lock = threading.Lock()

    def triage_event(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._triage.triage_event(*args, **kwargs)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._triage.claim(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # The rest (its router, whose dedupe store is thread-safe) is the Triage's own.
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
                 workers: int, tick: float, operations: threading.RLock):
        self.store, self.journal, self.host, self.config = store, journal, host, config
        self.triage = cast(Triage, _OneAtATime(triage))
        self.metrics = metrics
        # Runs ended, step durations and vendor errors of every run this process drives.
        self.observe = RunMetrics(metrics, lambda name: triage.router.playbooks.get(name),
                                  lambda run_id: journal.get_run(run_id).playbook)
        self.config_path = config_path
        self.workers = workers
        self.tick = tick
        self.operations = operations  # held by the timer and by the API's run operations
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="crownguard-intake")
        self._inflight: dict[int, Future[None]] = {}
        self._inflight_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._answer_wake = threading.Event()
        self.poller: IntakePoller | None = None
        # How runs start and resume: here, or handed to workers (serve --broker: worker/).
        self.respond: Callable[..., list[Any]] = respond
        self.resume_all: Callable[..., runs.ResumeAll] = runs.resume_all
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
                try:
                    items = self.store.take(free)
                except Exception as exc:
                    log.error("intake: cannot take items: %s", exc)
                    items = []
                for item in items:
                    with self._inflight_lock:
                        future = self._pool.submit(self._process, item)
                        self._inflight[item.id] = future
                    future.add_done_callback(self._done_callback(item.id))
                if items:
                    continue
            self._wake.wait(1.0)
            self._wake.clear()

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
        try:
            event = event_from_dict(item.event, origin=f"intake item {item.id}")
            responses = self.respond(self.triage, self.host, self.config, [event],
                                     journal=self.journal, on_event=self.observe)
            started = [r for response in responses for r in response.runs]
            for record in started:
                self.metrics.runs_started.labels(playbook=str(record.get("playbook"))).inc()
            self.store.finish(item.id, [str(r["run_id"]) for r in started])
            for record in started:
                _log_run(record)
            self.metrics.intake_processed.labels(outcome="done").inc()
        except Exception as exc:  # one bad item is set aside; the rest go on
            reason = self.config.redactor.redact(f"{type(exc).__name__}: {exc}")[:500]
            log.error("intake item %s (%s event %s) failed: %s", item.id, item.source,
                      item.event_id, reason)
            self.metrics.intake_processed.labels(outcome="failed").inc()
            try:
                self.store.finish(item.id, [], error=reason)
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
            with self.operations:
                result = runs.answer(self.journal, self.host, str(reply["run_id"]),
                                     str(reply["step_id"]), str(reply["decision"]),
                                     by=str(reply["by"]), comment=reply.get("comment"),
                                     aliases=[str(a) for a in reply.get("aliases") or ()],
                                     config_path=self.config_path, on_event=self.observe)
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

    def _timer(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.settle()
            except Exception as exc:
                log.error("timer: %s", self.config.redactor.redact(str(exc)))

    def settle(self) -> runs.ResumeAll:
        """Resume what is due now: expired waits, answered waits, runs whose writer died."""
        with self.operations, bound():
            done = self.resume_all(self.journal, self.host, config_path=self.config_path,
                                   on_event=self.observe)
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
        self._pool.shutdown(wait=False, cancel_futures=True)
        return not left
