"""The service's Prometheus metrics, each named `crownguard_...`, in a registry of its own
(two services in one process, as in tests, do not share counters)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
log = logging.getLogger("crownguard.service")


class ServiceMetrics:
    def __init__(self, intake_counts: Callable[[], dict[str, int]]):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("crownguard_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("crownguard_http_request_seconds", "time to answer a request",
                                 ["route"], registry=r)
        self.events_accepted = Counter("crownguard_events_accepted",
                                       "events stored for triage (duplicates included)",
                                       ["source", "duplicate"], registry=r)
        self.events_refused = Counter("crownguard_events_refused",
                                      "event requests refused, by error code",
                                      ["source", "code"], registry=r)
        self.intake_processed = Counter("crownguard_intake_processed",
                                        "intake items triaged and responded to",
                                        ["outcome"], registry=r)
        self.runs_started = Counter("crownguard_runs_started", "runs intake started",
                                    ["playbook"], registry=r)
        self.waits_settled = Counter("crownguard_timer_runs_resumed",
                                     "runs the timer resumed (expired waits, lapsed leases)",
                                     registry=r)
        self.timer_failures = Counter("crownguard_timer_resume_failures",
                                      "runs the timer could not resume", registry=r)
        self.runs_ended = Counter("crownguard_runs_ended",
                                  "runs the service drove to their end, by playbook and status",
                                  ["playbook", "status"], registry=r)
        self.step_seconds = Histogram("crownguard_step_duration_seconds",
                                      "from a step's first call to its end, by action",
                                      ["action"], registry=r,
                                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                                               300))
        self.vendor_errors = Counter("crownguard_vendor_errors",
                                     "failed attempts of vendor actions, by vendor and error "
                                     "kind", ["vendor", "kind"], registry=r)
        self._waits = Gauge("crownguard_waits_pending", "runs waiting for an answer or a "
                            "deadline", registry=r)
        self.waiting_runs: Callable[[], int] | None = None
        self.fingerprint_refreshes = Counter(
            "crownguard_fingerprint_refreshes", "fingerprint index refreshes from a registry",
            ["registry", "result"], registry=r)
        self.slack_interactions = Counter("crownguard_slack_interactions",
                                          "Slack interactions, by outcome: refused at the door "
                                          "(unverified, not_an_interaction, not_configured), "
                                          "taken, duplicate; then accepted, refused, failed",
                                          ["outcome"], registry=r)
        self.poll_failures = Counter("crownguard_poller_failures",
                                     "polls that failed (retried at the next interval)",
                                     registry=r)
        self._dead = Gauge("crownguard_dead_letters", "events a poller set aside, by source",
                           ["source"], registry=r)
        self._lag = Gauge("crownguard_poller_lag_seconds", "seconds since the start of the "
                          "poller's last complete poll (the feed is read up to then; "
                          "before the first, since the service started), by poller",
                          ["poller"], registry=r)
        self.dead_letter_counts: Callable[[], dict[str, int]] | None = None
        # A poller's lag, or each poller's by name (incydr, incydr_alerts).
        self.poller_lag: Callable[[], float | dict[str, float]] | None = None
        pending = Gauge("crownguard_intake_items", "intake items by status", ["status"],
                        registry=r)
        self._pending = pending
        self._intake_counts = intake_counts

    def render(self) -> bytes:
        try:
            for status, count in self._intake_counts().items():
                self._pending.labels(status=status).set(count)
            lag = self.poller_lag() if self.poller_lag is not None else None
            lags = lag if isinstance(lag, dict) else {} if lag is None else {"incydr": lag}
            for poller, seconds in lags.items():
                self._lag.labels(poller=poller).set(seconds)
            if self.dead_letter_counts is not None:
                counts = self.dead_letter_counts()
                # The file events feed's letters are incydr-poll's; another feed's its own.
                for source in set(counts) | {"incydr-poll"} | (set(lags) - {"incydr"}):
                    self._dead.labels(source=source).set(counts.get(source, 0))
            if self.waiting_runs is not None:
                self._waits.set(self.waiting_runs())
        except Exception as exc:  # the store unreachable: /readyz says so; metrics still answer
            log.debug("metrics: intake counts unavailable: %s", exc)
        return generate_latest(self.registry)
