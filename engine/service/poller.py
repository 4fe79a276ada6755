"""The Incydr pollers (`service.incydr_poll: {interval_seconds: N, alerts: true}`): new file
events of the `incydr` connection, and with `alerts` the file events of its alerting sessions,
into the intake table, as source `incydr-poll`. Each feed is a plugin's poller with a cursor
of its own (`incydr`, `incydr_alerts`); one thread polls them in turn (`PollerGroup`).

Each poll asks for the events from OVERLAP before its cursor on, oldest first, and stores them
a page at a time, the page's events and the new cursor (the page's latest event time) in one
transaction: a restart (even a kill -9 between pages) goes on from the last stored page, and
what it reads again is known by event id and not stored twice. The overlap catches events that
Incydr indexed late (their time before the cursor). An event that cannot be read is set aside
as a dead letter (`GET /v1/intake/dead-letters`, `crownguard_dead_letters{source}`, the
source naming the feed) and the rest go on. A 429 is honoured: the next poll waits for its
Retry-After. The poller itself is a plugin's (`crownguard_register_pollers`): the core calls
no vendor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..plugins import PluginHost, Poller
from ..sources import EventSource
from ..triage import Policy
from .intake import DeadLetter, IntakeStore
from .metrics import ServiceMetrics
from .payloads import normalise_payload
from .problems import ServiceProblem
from .settings import IncydrPoll, incydr_poll_settings

log = logging.getLogger("crownguard.service")
SOURCE = "incydr-poll"
POLLER = "incydr"
ALERTS_POLLER = "incydr_alerts"
OVERLAP = timedelta(minutes=5)
PAGE_SIZE = 500


@dataclass(frozen=True)
class PollResult:
    stored: int = 0
    duplicates: int = 0
    dead: int = 0
    pages: int = 0


def _parse(at: str) -> datetime:
    moment = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _key(item: dict[str, Any]) -> str:
    if item.get("id"):
        return str(item["id"])
    return "sha256:" + hashlib.sha256(json.dumps(item.get("raw"), sort_keys=True,
                                                 default=str).encode()).hexdigest()


class IntakePoller:
    """One poller feeding the intake table; `poll_once` is one pass over the feed."""

    def __init__(self, poller: Poller, config: Config, store: IntakeStore, policy: Policy,
                 sources: Iterable[EventSource], metrics: ServiceMetrics, interval: float, *,
                 page_size: int = PAGE_SIZE, overlap: timedelta = OVERLAP,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 source: str = SOURCE, dead_source: str | None = None):
        self.poller, self.config, self.store, self.policy = poller, config, store, policy
        self.sources = tuple(sources)
        self.metrics, self.interval, self.page_size = metrics, interval, page_size
        self.overlap, self.clock, self.source = overlap, clock, source
        # Whose dead letters these are (the API and the metric's label): the feed polled.
        self.dead_source = dead_source or source
        # The start of the last complete poll; before the first, when this poller was made.
        self.read_up_to = clock()
        self.completed = 0

    def lag_seconds(self) -> float:
        """How far behind now the feed is known to be read completely."""
        return max((self.clock() - self.read_up_to).total_seconds(), 0.0)

    def poll_once(self, stop: Any = None) -> PollResult:
        """One pass over the feed; `stop` (an Event), when set, ends it after a page."""
        started = self.clock()
        saved = self.store.cursor(self.poller.name)
        # The first poll reads the overlap before it began; the cursor starts there.
        cursor = _parse(saved) if saved else started - self.overlap
        stored = duplicates = dead = pages = 0
        for page in self.poller.poll(self.config.connections,
                                     cursor - self.overlap if saved else cursor,
                                     self.page_size):
            if stop is not None and stop.is_set():
                return PollResult(stored, duplicates, dead, pages)
            pages += 1
            events: list[tuple[str, dict[str, Any]]] = []
            letters: list[DeadLetter] = []
            latest = cursor
            for item in page:
                try:
                    if item.get("problem"):  # the plugin could not read it
                        raise ValueError(str(item["problem"]))
                    if not item.get("id") or not item.get("at"):
                        raise ValueError("it has no event id or no event time")
                    at = _parse(str(item["at"]))
                    events.extend((e.id, e.to_dict()) for e in normalise_payload(
                        item["raw"], self.policy, self.sources))
                    latest = max(latest, at)
                except (ServiceProblem, ValueError, TypeError) as exc:
                    reason = self.config.redactor.redact(
                        exc.message.removesuffix("; nothing was stored") if isinstance(
                            exc, ServiceProblem) else str(exc))[:500]
                    letters.append(DeadLetter(_key(item), item.get("id"), reason,
                                              item.get("raw")))
            if letters and self.dead_source != self.source:
                # Its own feed's letters, committed before the page: a kill in between reads
                # the page again and finds them set aside already (once each, by key).
                self.store.add(self.dead_source, [], dead=letters)
            accepted = self.store.add(self.source, events, dead=letters if self.dead_source
                                      == self.source else None,
                                      poll_cursor=(self.poller.name, _iso(latest)))
            cursor = latest
            fresh = sum(1 for a in accepted if not a.duplicate)
            stored, duplicates, dead = stored + fresh, duplicates + len(accepted) - fresh, \
                dead + len(letters)
            for letter in letters:
                log.warning("poller %s: event %s set aside: %s", self.poller.name,
                            letter.event_id or letter.key, letter.reason)
            self.metrics.events_accepted.labels(self.source, "false").inc(fresh)
            self.metrics.events_accepted.labels(self.source, "true").inc(len(accepted) - fresh)
        # The feed is read up to when this poll began: the cursor moves there (never back).
        if started > cursor:
            self.store.add(self.source, [], poll_cursor=(self.poller.name, _iso(started)))
        self.read_up_to = started
        self.completed += 1
        return PollResult(stored, duplicates, dead, pages)

    def lags(self) -> dict[str, float]:
        return {self.poller.name: self.lag_seconds()}

    def poll_logged(self, stop: Any, wake: Callable[[], None]) -> float:
        """One poll, its failure logged and counted; the seconds a 429 asks to wait (0)."""
        try:
            result = self.poll_once(stop)
            if result.stored:
                wake()
        except Exception as exc:  # the vendor down, a bad answer: try again next time
            self.metrics.poll_failures.inc()
            retry_after = getattr(exc, "retry_after", None)
            log.error("poller %s: %s%s", self.poller.name,
                      self.config.redactor.redact(f"{type(exc).__name__}: {exc}"),
                      f" (polling again in {retry_after:g} s at the earliest, as its "
                      "Retry-After asks)" if retry_after else "")
            return float(retry_after or 0.0)
        return 0.0

    def run(self, stop: Any, wake: Callable[[], None]) -> None:
        """Poll every `interval` seconds until `stop` (an Event) is set."""
        PollerGroup([self], self.interval).run(stop, wake)


class PollerGroup:
    """The feeds of `service.incydr_poll`, polled in turn by one thread, each every
    `interval` from the start of its last poll; a feed told to wait (a 429's Retry-After) is
    not asked again before then."""

    def __init__(self, feeds: list[IntakePoller], interval: float,
                 monotonic: Callable[[], float] = time.monotonic):
        self.feeds, self.interval, self.monotonic = feeds, interval, monotonic
        self.next_at = {feed.poller.name: 0.0 for feed in feeds}

    @property
    def name(self) -> str:
        """The group's name (`incydr`): one replica polls all of its feeds (replicas.py)."""
        return POLLER

    def lag_seconds(self) -> dict[str, float]:
        return {name: lag for feed in self.feeds for name, lag in feed.lags().items()}

    def run(self, stop: Any, wake: Callable[[], None]) -> None:
        while not stop.is_set():
            for feed in self.feeds:
                name = feed.poller.name
                if stop.is_set() or self.monotonic() < self.next_at[name]:
                    continue
                began = self.monotonic()
                wait = feed.poll_logged(stop, wake)
                self.next_at[name] = max(began + self.interval, self.monotonic() + wait)
            stop.wait(max(min(self.next_at.values()) - self.monotonic(), 0.05))


def incydr_poller(host: PluginHost, config: Config, store: IntakeStore, policy: Policy,
                  metrics: ServiceMetrics, interval: float,
                  settings: IncydrPoll | None = None) -> PollerGroup:
    """The pollers of `service.incydr_poll` (`settings`: read from `config` when None); a
    ConfigError when one cannot run."""
    settings = settings or incydr_poll_settings(config.service) or IncydrPoll(interval)
    wanted = [name for name, on in ((POLLER, settings.file_events),
                                    (ALERTS_POLLER, settings.alerts)) if on]
    feeds = []
    for name in wanted:
        poller = host.pollers.get(name)
        if poller is None:
            raise ConfigError(f"service.incydr_poll: no installed plugin polls Incydr "
                              f"('{name}': is the incydr plugin disabled?)")
        if poller.connection not in config.connections.names():
            raise ConfigError(f"service.incydr_poll: the connections file has no "
                              f"'{poller.connection}' connection to poll")
        feeds.append(IntakePoller(poller, config, store, policy, host.event_sources.values(),
                                  metrics, interval, dead_source=None if name == POLLER
                                  else name))
    return PollerGroup(feeds, interval)
