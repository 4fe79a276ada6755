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
from ..journal.postgres import PostgresJournal
from ..journal.postgres_dedupe import PostgresDedupe
from ..plugins import PluginHost
from ..triage import FingerprintIndex, Policy, RoutingSettings, Triage, load_policy
from ..triage.dedupe import DedupeStore, dedupe_path_beside
from ..triage.detection.fetch import fetch_for
from ..triage.respond import (
    open_dedupe_store,
    open_fingerprint_index,
    open_history,
    triage_with,
)
from ..triage.risk.store import SQLiteHistory
from ..triage.risk.store_pg import PostgresHistory
from .access_ledger import access_of
from .background import Background
from .intake import IntakeStore, SQLiteIntakeStore
from .listing import RunListing, RunPages
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
                 policy: Policy, journal: SQLiteJournal | PostgresJournal, store: IntakeStore,
                 listing: RunPages, triage: Triage, options: Options, closing: ExitStack,
                 refresh: RefreshPlan | None = None):
        self.host, self.config, self.settings, self.policy = host, config, settings, policy
        self.journal, self.store, self.listing, self.triage = journal, store, listing, triage
        self.options = options
        self.config_path = config.source or None
        self.metrics = ServiceMetrics(store.counts)
        self.metrics.waiting_runs = lambda: listing.count("waiting")
        self.rates = RateLimiter()
        self.draining = threading.Event()
        self.background = Background(store, journal, host, config, triage, self.metrics,
                                     config_path=self.config_path, workers=options.workers,
                                     tick=options.tick)
        # `with service.operation(run_id) as full_id:` around an API call acting on a run.
        self.operation = self.background.operation
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
            store, listing = _intake_and_listing(journal)
            opened.callback(store.close)
            opened.callback(listing.close)
            triage = _triage(policy, host, journal if isinstance(journal, PostgresJournal)
                             else journal.path, config)
            opened.callback(triage.close)
            triage.access = access_of(journal)  # grants and denials: context for scoring
            refresh = _refresh_plan(policy, host, config)
            closing = opened.pop_all()
        return cls(host, config, settings, policy, journal, store, listing, triage, options,
                   closing, refresh)

    @property
    def journal_name(self) -> str:
        """The journal's file, or its database by user, host, port and name (no password)."""
        journal = self.journal
        return journal.name if isinstance(journal, PostgresJournal) else str(journal.path)

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


def _intake_and_listing(journal: SQLiteJournal | PostgresJournal
                        ) -> tuple[IntakeStore, RunPages]:
    """The intake store and the run listing beside the journal, by its kind: its SQLite file,
    or its PostgreSQL database (whose tables the journal's migrations made)."""
    if isinstance(journal, PostgresJournal):
        from .intake_pg import PostgresIntakeStore
        from .listing_pg import PostgresRunListing

        return PostgresIntakeStore(journal.target.dsn), PostgresRunListing(journal)
    store = SQLiteIntakeStore(journal.path, synchronous=journal.synchronous)
    try:
        return store, RunListing(journal.path)
    except BaseException:
        store.close()
        raise


def _triage(policy: Policy, host: PluginHost, journal: Path | PostgresJournal,
            config: Config) -> Triage:
    """The triage `respond` would build: the policy's dedupe store, else the journal's (its
    SQLite neighbour file, or its PostgreSQL database)."""
    routing = RoutingSettings.from_policy(policy)
    store: DedupeStore
    if routing.dedupe_store is not None:
        store = open_dedupe_store(routing.dedupe_store, f"{policy.source}: routing.dedupe_store: ")
    elif isinstance(journal, PostgresJournal):
        store = PostgresDedupe(journal.target.dsn)
    else:
        store = open_dedupe_store(dedupe_path_beside(journal))
    index: FingerprintIndex | None = None
    history: SQLiteHistory | PostgresHistory | None = None
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
