"""One running service: what it was started with and what its parts share.

`Service.start(...)` checks everything first (connections file and its `service` section,
policy, playbooks, journal) and raises a CrownguardError naming the file and the problem;
nothing runs until all of it is usable.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..errors import FingerprintIndexError, TriageInputError
from ..journal import SQLiteJournal, open_journal
from ..plugins import PluginHost
from ..triage import FingerprintIndex, Policy, RoutingSettings, Triage, load_policy
from ..triage.dedupe import dedupe_path_beside
from ..triage.detection.fetch import fetch_for
from ..triage.respond import (
    open_dedupe_store,
    open_fingerprint_index,
    open_history,
    triage_with,
)
from ..triage.risk.store import SQLiteHistory
from .access_ledger import access_of
from .background import Background
from .intake import IntakeStore
from .listing import RunListing
from .metrics import ServiceMetrics
from .problems import ServiceProblem
from .refresher import Refresher, registries_for
from .settings import ServiceSettings, service_settings

log = logging.getLogger("crownguard.service")


@dataclass(frozen=True)
class Options:
    config: str | None
    policy: str | None
    journal: str | None
    workers: int = 4
    tick: float = 1.0
    grace: float = 30.0


class RateLimiter:
    """A token bucket per event source: `per_minute` requests, in bursts of as many."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, source: str, per_minute: int) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(source, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - at) * per_minute / 60.0)
            if tokens < 1.0:
                self._buckets[source] = (tokens, now)
                wait = math.ceil((1.0 - tokens) * 60.0 / per_minute)
                raise ServiceProblem(429, "rate_limited", f"source '{source}' sends more than "
                                     f"{per_minute} requests a minute: retry in {wait} s",
                                     "source", headers={"Retry-After": str(wait)})
            self._buckets[source] = (tokens - 1.0, now)


class Service:
    def __init__(self, host: PluginHost, config: Config, settings: ServiceSettings,
                 policy: Policy, journal: SQLiteJournal, store: IntakeStore,
                 listing: RunListing, triage: Triage, options: Options, closing: ExitStack,
                 refresh: RefreshPlan | None = None):
        self.host, self.config, self.settings, self.policy = host, config, settings, policy
        self.journal, self.store, self.listing, self.triage = journal, store, listing, triage
        self.options = options
        self.config_path = config.source or None
        self.metrics = ServiceMetrics(store.counts)
        self.metrics.waiting_runs = lambda: listing.count("waiting")
        self.rates = RateLimiter()
        self.operations = threading.RLock()
        self.draining = threading.Event()
        self.background = Background(store, journal, host, config, triage, self.metrics,
                                     config_path=self.config_path, workers=options.workers,
                                     tick=options.tick, operations=self.operations)
        self.refresher = None if refresh is None else Refresher(*refresh, self.metrics)
        self._closing = closing

    @classmethod
    def start(cls, host: PluginHost, options: Options) -> Service:
        """Everything checked and opened; the background not started yet (`run` does)."""
        with ExitStack() as opened:
            if not options.config:
                raise TriageInputError("serve: --config FILE is required: the connections "
                                       "file with the service's tokens and event sources")
            config = load_config(options.config, host.connection_types)
            opened.callback(config.connections.close)
            settings = service_settings(config)
            policy = load_policy(options.policy)
            journal = open_journal(options.journal)
            opened.callback(journal.close)
            if not isinstance(journal, SQLiteJournal):  # the intake queue is SQLite's, so far
                raise TriageInputError(f"serve: the journal {journal.name} is PostgreSQL; "
                                       "crownguard serve keeps a SQLite journal for now")
            store = IntakeStore(journal.path, synchronous=journal.synchronous)
            opened.callback(store.close)
            listing = RunListing(journal.path)
            opened.callback(listing.close)
            triage = _triage(policy, host, journal.path, config)
            opened.callback(triage.close)
            triage.access = access_of(journal)  # grants and denials: context for scoring
            refresh = _refresh_plan(policy, host, config)
            closing = opened.pop_all()
        return cls(host, config, settings, policy, journal, store, listing, triage, options,
                   closing, refresh)

    def close(self) -> None:
        if self.refresher is not None:
            self.refresher.stop()
        self._closing.close()


# Refresher's arguments before the metrics: index, host, config, registries, interval.
RefreshPlan = tuple[Path, PluginHost, Config, list[str], float]


def _refresh_plan(policy: Policy, host: PluginHost, config: Config) -> RefreshPlan | None:
    """The policy's `routing.fingerprints_refresh`, checked: it needs `routing.fingerprints`,
    and the registries it names must be registry plugins."""
    routing = RoutingSettings.from_policy(policy)
    if routing.refresh_seconds is None:
        return None
    if routing.fingerprints is None:
        raise TriageInputError(f"{policy.source}: routing.fingerprints_refresh needs "
                               "routing.fingerprints, the index it keeps up to date")
    registries = registries_for(host, config, routing.refresh_registries)
    return routing.fingerprints, host, config, registries, routing.refresh_seconds


def _triage(policy: Policy, host: PluginHost, journal: Path, config: Config) -> Triage:
    """The triage `respond` would build: the policy's dedupe store, else the journal's."""
    routing = RoutingSettings.from_policy(policy)
    if routing.dedupe_store is not None:
        store = open_dedupe_store(routing.dedupe_store, f"{policy.source}: routing.dedupe_store: ")
    else:
        store = open_dedupe_store(dedupe_path_beside(journal))
    index: FingerprintIndex | None = None
    history: SQLiteHistory | None = None
    try:  # the risk history in the same file, shared with respond and triage
        history = open_history(store, writable=True)
        if routing.fingerprints is not None:
            index = open_fingerprint_index(routing.fingerprints,
                                           f"{policy.source}: routing.fingerprints")
        triage = triage_with(policy, host, store, index, variables=config.vars,
                             history=history)
    except BaseException:
        if index is None:  # triage_with closes them all itself when it fails
            store.close()
            if history is not None:
                history.close()
        raise
    try:  # content checks from the sources the connections file reaches, as respond makes
        triage.fetch = fetch_for(host, config, index.path if index is not None else None,
                                 getattr(store, "path", None))
    except FingerprintIndexError as exc:
        triage.close()
        raise TriageInputError(f"content cache: {exc}") from None
    return triage
