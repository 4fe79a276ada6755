"""The triage pipeline: from a raw alert to the playbooks it should start.

    triage = build_triage(policy, host)                  # playbooks, dedupe store, index
    for verdict in triage.triage(raw, claim=True):       # normalise -> detect -> score -> route
        verdict.playbooks                                # the Playbooks to run, in order

With `fetch` (a detection.fetch.ContentFetch), an event whose metadata leaves the model
question open is decided by its first bytes, fetched from a content source by SHA-256.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RoutingError
from ..spec import Playbook
from .dedupe import DedupeStore, InMemoryDedupe, SQLiteDedupe
from .detection import Detection, detect
from .detection.fingerprints import FingerprintIndex
from .events import DestinationKind, ModelMovementEvent, normalise_many
from .policy import Policy
from .risk import InMemoryHistory, RiskScore, score
from .risk.access_facts import AccessSource
from .risk.history import RecordingHistory
from .router import (
    RouteDecision,
    Router,
    RoutingSettings,
    detection_data,
    load_playbooks,
    shipped_playbooks_dir,
)

if TYPE_CHECKING:
    from ..plugins import PluginHost
    from ..sources import EventSource
    from .detection import ContentSource
    from .detection.fetch import ContentFetch


@dataclass
class Verdict:
    """One event, triaged: what it is, how risky, and which playbooks it starts.

    `event_data` and `risk_data`, what playbooks see as `event` and `risk`, are built when
    first asked for: a feed's events mostly start nothing, and routing reads only a few
    fields."""

    event: ModelMovementEvent
    detection: Detection
    risk: RiskScore
    decisions: list[RouteDecision] = field(default_factory=list)
    playbooks: list[Playbook] = field(default_factory=list)

    @cached_property
    def event_data(self) -> dict[str, Any]:
        return self.event.to_dict()

    @cached_property
    def risk_data(self) -> dict[str, Any]:
        return {**self.risk.to_dict(), "detection": detection_data(self.detection)}

    def to_dict(self, *, include_raw: bool = False) -> dict[str, Any]:
        event = dict(self.event_data)
        if not include_raw:
            event.pop("raw", None)
        return {"event": event, "detection": detection_data(self.detection),
                "risk": {k: v for k, v in self.risk_data.items() if k != "detection"},
                "routes": [d.to_dict() for d in self.decisions],
                "playbooks": [p.name for p in self.playbooks]}


def leaves(event: ModelMovementEvent) -> bool:
    """Whether the file went somewhere not trusted: only such a move can be a violation (a
    departing engineer's download from the registry to their laptop scores high, but it is
    not a violation the next event should be held against)."""
    return event.destination.trusted is not True and \
        event.destination.kind != DestinationKind.ENDPOINT


class Triage:
    """normalise -> detect -> score -> route, remembering each person's history.

    History is recorded once per event: an event delivered again (same origin and id) keeps
    the score it got the first time (it is not its own earlier violation), adds no volume,
    and is routed again, where dedupe recognises it."""

    RECENT_EVENTS = 100_000

    def __init__(self, policy: Policy, router: Router, *, index: FingerprintIndex | None = None,
                 history: RecordingHistory | None = None, sources: Iterable[EventSource] = (),
                 fetch: ContentFetch | None = None, access: AccessSource | None = None):
        self.policy = policy
        self.access = access  # the people's model access requests, read as scoring context
        self.fetch = fetch  # content checks from the source, for open model questions
        self.router = router
        self.index = index
        self.sources = tuple(sources)  # the event sources plugins registered (Incydr's...)
        self.history: RecordingHistory = history if history is not None else InMemoryHistory()
        # The scores of recent events, in two generations of plain dicts (cheaper than an
        # OrderedDict per event): between RECENT_EVENTS/2 and RECENT_EVENTS are kept. Keys
        # are strings and scores marshalled bytes (RiskScore.packed()): objects the garbage
        # collector does not track. As tuples, the six or so a score packs into made the
        # collector run every hundred events (up to a tenth of triage's time).
        self._scored: dict[str, bytes] = {}
        self._scored_before: dict[str, bytes] = {}

    def close(self) -> None:
        """Release the dedupe store's, the index's, the content cache's, the history's and
        the access requests' files."""
        for resource in (self.router.store, self.index, self.fetch, self.history, self.access):
            close = getattr(resource, "close", None)
            if close is not None:
                close()

    def triage(self, raw: Any, *, claim: bool = False,
               content: ContentSource | None = None) -> list[Verdict]:
        """Every event in a payload (one event, a list, or what an event source reads: an
        Incydr alert or search answer...)."""
        events = normalise_many(raw, options=self.policy.options,
                                mappings=self.policy.mappings.values(), sources=self.sources)
        if content is None:
            self.prefetch(events)
        return [self.triage_event(event, claim=claim, content=content) for event in events]

    def prefetch(self, events: Iterable[ModelMovementEvent]) -> None:
        """Fetch the heads a batch's open model questions need, several at a time (with
        `fetch` set; else nothing): `triage_event` then finds them cached."""
        if self.fetch is not None:
            self.fetch.prefetch(events, self.index)

    def triage_event(self, event: ModelMovementEvent, *, claim: bool = False,
                     content: ContentSource | None = None) -> Verdict:
        if content is None and self.fetch is not None:
            detection = self.fetch.detect(event, self.index)
        else:
            detection = detect(event, content=content, index=self.index)
        key = f"{len(event.origin)}:{event.origin}:{event.id}"  # a str: see __init__
        packed = self._scored.get(key) or self._scored_before.get(key)
        if packed is not None:
            # bytes this object marshalled itself, never read from outside
            risk = RiskScore.unpacked(marshal.loads(packed))  # noqa: S302
        else:
            risk = score(event, detection, self.policy, self.history, access=self.access)
            if len(self._scored) >= self.RECENT_EVENTS // 2:
                self._scored_before, self._scored = self._scored, {}
            self._scored[key] = marshal.dumps(risk.packed())
            self.history.record(event, detection, risk if leaves(event) else None,
                                violation_level=self.policy.violation_level)
        event = event.with_detection(detection)
        router = self.router
        decisions = router.route_event(event, risk, detection, at=event.time.timestamp(),
                                       claim=claim)
        chosen = [router.playbooks[d.playbook] for d in decisions if d.chosen]
        return Verdict(event, detection, risk, decisions, chosen)

    def claim(self, verdict: Verdict) -> Verdict:
        """The verdict of an event triaged without claiming, with each chosen playbook's
        start claimed now: one that started meanwhile (the same event earlier in the
        input, another process) becomes a duplicate and is no longer chosen."""
        at = verdict.event.time.timestamp()
        chosen = {p.name for p in verdict.playbooks}
        decisions = [self.router.claim(d.playbook, verdict.event, at=at)
                     if d.playbook in chosen else d for d in verdict.decisions]
        playbooks = [self.router.playbooks[d.playbook] for d in decisions if d.chosen]
        claimed = Verdict(verdict.event, verdict.detection, verdict.risk, decisions, playbooks)
        for built in ("event_data", "risk_data"):  # the same event and score: not built again
            if built in verdict.__dict__:
                claimed.__dict__[built] = verdict.__dict__[built]
        return claimed


def build_triage(policy: Policy, host: PluginHost, *, variables: dict[str, Any] | None = None,
                 playbooks: Sequence[Path] = (), store: DedupeStore | None = None,
                 index: FingerprintIndex | None = None,
                 history: RecordingHistory | None = None,
                 access: AccessSource | None = None) -> Triage:
    """A Triage set up from the policy's `routing` section (and extra playbook paths).

    Candidates: the policy's playbooks, then (unless `shipped_playbooks: false`) the shipped
    ones and those plugins register. `store` and `index` override the policy's files. Raw
    payloads are read by the event sources the host's plugins register; `access` (the
    people's model access requests) is context for scoring."""
    settings = RoutingSettings.from_policy(policy)
    missing = [str(path) for path in settings.playbooks if not path.exists()]
    if missing:
        raise RoutingError(f"{policy.source}: routing.playbooks: no such file or directory: "
                           f"{', '.join(missing)}")
    paths = [*playbooks, *settings.playbooks]
    if settings.shipped_playbooks:
        shipped = shipped_playbooks_dir()
        paths += [shipped] if shipped else []
        paths += host.playbooks
    loaded = load_playbooks(paths, host.actions)
    if store is None:
        store = SQLiteDedupe(settings.dedupe_store) if settings.dedupe_store else \
            InMemoryDedupe()
    if index is None and settings.fingerprints is not None:
        if not settings.fingerprints.is_file():
            raise RoutingError(f"{policy.source}: routing.fingerprints: no fingerprint index "
                               f"at {settings.fingerprints}")
        index = FingerprintIndex(settings.fingerprints)
    router = Router(loaded, window_seconds=settings.window_seconds, store=store,
                    variables=variables)
    return Triage(policy, router, index=index, history=history,
                  sources=host.event_sources.values(), access=access)
