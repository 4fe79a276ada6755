"""The service's access timer: grants approved requests the registry refused earlier, takes
back every grant at its deadline, also those whose deadline passed while the service was down,
and reminds the requester a day before a grant of more than a day ends.
Its own thread; each expiry is a compare-and-set in the store, so it is recorded once even
with several service processes on one journal."""

from __future__ import annotations

import logging
import os
import threading

from ..errors import JournalUnavailable, UsageError
from .access import AccessDesk
from .access_routes import desk_for
from .service import Service

log = logging.getLogger("crownguard.access")
DEFAULT_TICK = 5.0
ENV_TICK = "CROWNGUARD_ACCESS_TICK_SECONDS"


class AccessTimer:
    def __init__(self, desk: AccessDesk | None, tick: float = DEFAULT_TICK):
        # None: the journal keeps no access requests; the timer then does nothing.
        self.desk, self.tick = desk, tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crownguard-access",
                                        daemon=True)

    def start(self) -> AccessTimer:
        if self.desk is not None:
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.desk is not None:
            close = getattr(self.desk.notifier, "close", None)
            if close is not None:  # what is queued for Slack goes out first
                close()
            self.desk.store.close()

    def run_once(self) -> int:
        """One pass: pending grants, due expiries, then the reminders a day before an end;
        how many requests changed."""
        if self.desk is None:
            return 0
        return (len(self.desk.retry_grants()) + len(self.desk.expire_due())
                + len(self.desk.remind_due()))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except JournalUnavailable as exc:  # the database is gone for now: said, retried
                log.warning("the access timer's pass failed: %s", exc)
            except Exception:  # a bad pass must not end the timer: the next one retries
                log.exception("the access timer's pass failed")
            self._stop.wait(self.tick)


def start_access_timer(service: Service) -> AccessTimer:
    """The timer, started (idle when the journal keeps no access requests)."""
    text = os.environ.get(ENV_TICK) or str(DEFAULT_TICK)
    try:
        tick = float(text)
    except ValueError:
        raise UsageError(f"{ENV_TICK} must be a number of seconds, not {text!r}") from None
    return AccessTimer(desk_for(service), max(tick, 0.05)).start()
