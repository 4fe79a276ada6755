"""What the service does between requests: the intake worker and the timer.

The intake worker takes pending intake items and triages and responds to each
(`triage.respond.respond`), at most `workers` at a time, and marks each done with the runs it
started. The timer calls `runs.resume_all` every `tick` seconds: a wait whose deadline passed is
settled, and a run whose writer died (its lease lapsed) is taken over and finished.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, cast

from .. import runs
from ..config import Config
from ..journal import Journal
from ..plugins import PluginHost
from ..triage import Triage, event_from_dict
from ..triage.respond import respond
from .intake import IntakeItem, IntakeStore
from .logs import bound
from .metrics import ServiceMetrics

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

    def start(self) -> None:
        for name, target in (("intake", self._dispatch), ("timer", self._timer)):
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
            responses = respond(self.triage, self.host, self.config, [event],
                                journal=self.journal)
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
            done = runs.resume_all(self.journal, self.host, config_path=self.config_path)
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
