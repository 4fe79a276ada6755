"""Routing: from a raw alert to the playbooks it should start, and to nothing twice.

    triage = build_triage(policy, host)                  # playbooks, dedupe store, index
    for verdict in triage.triage(raw, claim=True):       # normalise -> detect -> score -> route
        verdict.playbooks                                # the Playbooks to run, in order

A playbook is a candidate when its `trigger.if` (JMESPath over `{event, risk, vars}`) is true.
Triggers are compiled when the router is built; per event, the context holds only the parts of
the event and the score that some trigger reads (and the file and person dedupe needs). One
event never starts the same playbook twice for the same file (SHA-256, else path, else name)
and person within the dedupe window, measured in *event* time: a re-delivered event, or a
second event about the same copy a minute later, is recognised however late it arrives.
The dedupe state lives behind `DedupeStore`: in memory for one process, or a small SQLite file
shared by processes (`routing.dedupe_store` in the policy).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import CrownguardError, ExpressionError, Problem, SpecError
from ..expressions import (
    WHOLE,
    Reads,
    evaluator,
    is_pure,
    merge_reads,
    reads,
    truthy,
)
from ..spec import Playbook, load_playbook
from .detection import Detection, detect
from .detection.fingerprints import FingerprintIndex
from .events import (
    Actor,
    Destination,
    DestinationKind,
    Device,
    FileInfo,
    ModelMovementEvent,
    Source,
    normalise_many,
)
from .risk import InMemoryHistory, Policy, RiskScore, score

if TYPE_CHECKING:
    from ..actions import Action
    from ..plugins import PluginHost
    from .detection import ContentSource

DEFAULT_WINDOW_SECONDS = 3600.0
PLAYBOOK_SUFFIXES = (".yaml", ".yml", ".json")
SCENARIO_SUFFIXES = (".scenario.yaml", ".scenario.yml")
_WINDOW = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class RoutingError(CrownguardError):
    """The routing set-up is unusable (two playbooks of one name, a missing index...)."""


# --- settings ----------------------------------------------------------------------------------


def parse_window(value: float | int | str | None) -> float:
    """Seconds from `3600`, `"90m"`, `"1h"`, `"2d"`; None gives the default (1 h)."""
    if value is None:
        return DEFAULT_WINDOW_SECONDS
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise RoutingError(f"dedupe window {value} is negative")
        return float(value)
    match = _WINDOW.match(str(value))
    if not match:
        raise RoutingError(f"dedupe window '{value}' is not a duration (3600, 90m, 1h, 2d)")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


@dataclass(frozen=True)
class RoutingSettings:
    """The policy's `routing` section, paths resolved against the policy file."""

    playbooks: tuple[Path, ...] = ()
    shipped_playbooks: bool = True
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    dedupe_store: Path | None = None
    fingerprints: Path | None = None

    @classmethod
    def from_policy(cls, policy: Policy) -> RoutingSettings:
        section = dict(policy.data.get("routing") or {})
        base = Path(policy.source).resolve().parent if not policy.source.startswith("<") \
            else Path.cwd()

        def resolve(text: str | None) -> Path | None:
            return None if text is None else (base / Path(text).expanduser())

        return cls(playbooks=tuple(base / Path(p).expanduser()
                                   for p in section.get("playbooks") or ()),
                   shipped_playbooks=bool(section.get("shipped_playbooks", True)),
                   window_seconds=parse_window(section.get("dedupe_window")),
                   dedupe_store=resolve(section.get("dedupe_store")),
                   fingerprints=resolve(section.get("fingerprints")))


def shipped_playbooks_dir() -> Path | None:
    """The shipped playbooks: the `crownguard.playbooks` package (`playbooks/` in a checkout or
    an editable install, `crownguard/playbooks` in an installed wheel)."""
    try:
        spec = importlib.util.find_spec("crownguard.playbooks")
    except ModuleNotFoundError:
        return None
    # A namespace package (the folder holds YAML, no __init__): its first real directory.
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return None


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    """Playbook files named directly or found (not recursively) in directories; scenario
    files are not playbooks."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.is_file()
                                and p.name.endswith(PLAYBOOK_SUFFIXES)
                                and not p.name.endswith(SCENARIO_SUFFIXES)))
        else:
            found.append(path)
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def load_playbooks(paths: Iterable[Path], actions: dict[str, Action] | None) -> list[Playbook]:
    """Load and check every playbook, reporting every broken one at once."""
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    for path in playbook_files(paths):
        try:
            playbooks.append(load_playbook(path, actions))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return playbooks


# --- dedupe ------------------------------------------------------------------------------------


class DedupeStore(Protocol):
    """When a playbook last started for a key; claims are atomic."""

    def last_start(self, key: str, at: float, window: float) -> float | None:
        """The start within `window` of event time `at`, if any (read only)."""

    def claim(self, key: str, at: float, window: float) -> float | None:
        """Record a start at `at` unless one lies within `window`; return that one if so."""


class InMemoryDedupe:
    """Dedupe state for one process (the CLI with no store configured, the demo, tests)."""

    def __init__(self) -> None:
        self._starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._starts.get(key)
        return before if before is not None and abs(at - before) < window else None

    def claim(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._starts.get(key)
            if before is not None and abs(at - before) < window:
                return before
            self._starts[key] = at
            return None


class ScratchDedupe:
    """Claims kept for one command over a store it only reads.

    `triage` claims through it, so the second of two identical events in one input shows as
    the duplicate `respond` would make of it, and nothing is written to the real store."""

    def __init__(self, store: DedupeStore):
        self.store = store
        self._starts: dict[str, float] = {}
        self._lock = threading.Lock()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            return self._last_start(key, at, window)

    def claim(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            before = self._last_start(key, at, window)
            if before is None:
                self._starts[key] = at
            return before

    def _last_start(self, key: str, at: float, window: float) -> float | None:
        # A claim made here replaces the real store's start, as it would in the real store.
        before = self._starts.get(key)
        if before is None:
            return self.store.last_start(key, at, window)
        return before if abs(at - before) < window else None

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


class SQLiteDedupe:
    """Dedupe state in a small SQLite file, safe across threads and processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS starts (key TEXT PRIMARY KEY, "
                         "at REAL NOT NULL)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def last_start(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT at FROM starts WHERE key = ?", (key,)).fetchone()
        return row[0] if row is not None and abs(at - row[0]) < window else None

    def claim(self, key: str, at: float, window: float) -> float | None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT at FROM starts WHERE key = ?", (key,)).fetchone()
                if row is not None and abs(at - row[0]) < window:
                    self._db.execute("ROLLBACK")
                    return float(row[0])
                self._db.execute("INSERT OR REPLACE INTO starts (key, at) VALUES (?, ?)",
                                 (key, at))
                self._db.execute("COMMIT")
                return None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise


def dedupe_key(playbook: str, event: dict[str, Any] | ModelMovementEvent) -> str:
    """playbook + person + file (SHA-256, else path, else name), hashed: the store keeps no
    e-mail address or path in clear. `event` is the event's data or the event itself."""
    sha256: Any
    path: Any
    name: Any
    email: Any
    if isinstance(event, ModelMovementEvent):
        sha256, path, name = event.file.sha256, event.file.path, event.file.name
        email = event.actor.email
    else:
        file = event.get("file") or {}
        sha256, path, name = file.get("sha256"), file.get("path"), file.get("name")
        email = (event.get("actor") or {}).get("email")
    ident = f"sha256:{sha256}" if sha256 else f"path:{path}" if path else f"name:{name}"
    person = str(email or "").lower()
    return hashlib.sha256(f"{playbook}\x1f{person}\x1f{ident}".encode()).hexdigest()


# --- the router --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteDecision:
    """What routing made of one playbook for one event."""

    playbook: str
    matched: bool
    chosen: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "matched": self.matched, "chosen": self.chosen,
                "reason": self.reason}


@dataclass(frozen=True)
class _Route:
    playbook: Playbook
    trigger: Callable[[dict[str, Any]], Any]
    vars: dict[str, Any]
    not_matched: RouteDecision
    matched: RouteDecision


# A trigger's outcome for one event: a final decision (false, failed), or None for "matched,
# now ask dedupe".
_Outcome = tuple[RouteDecision | None, ...]
_Getter = Callable[[Any], Any]
_EVENT_VALUES = ("id", "time", "action", "origin", "incident")
_EVENT_PARTS = {"actor": Actor, "file": FileInfo, "source": Source, "destination": Destination,
                "device": Device}
_RISK_VALUES: dict[str, _Getter] = {
    "score": attrgetter("score"), "level": attrgetter("level"),
    "indicators": lambda risk: tuple(risk.indicators)}
_MEMO_SIZE = 65_536


_Getters = tuple[tuple[_Getter, ...], tuple[_Getter, ...], tuple[_Getter, ...]]
# What `risk.detection` holds (detection_data): each a value or a frozen, hashable object.
_DETECTION_VALUES = ("is_model", "format", "confidence", "method", "evidence", "disguised",
                     "match")


def _memo_getters(read: Reads) -> _Getters | None:
    """Getters of the event, score and detection attributes behind every value the triggers
    read, or None when they read something that is not such a value (all of the event, its
    raw payload, the reasons): then every event is evaluated in full.

    The data a trigger sees is a function of these attributes (to_dict converts each one on
    its own), so equal attributes give equal decisions."""
    if not isinstance(read, dict):
        return None
    event_getters: list[_Getter] = []
    risk_getters: list[_Getter] = []
    detection_getters: list[_Getter] = []
    for root, sub in read.items():
        if root == "event":
            if not isinstance(sub, dict):
                return None
            for key, deeper in sub.items():
                if key in _EVENT_VALUES:
                    event_getters.append(attrgetter(key))
                elif key in _EVENT_PARTS:
                    if not isinstance(deeper, dict):
                        return None  # the whole of event.actor, say
                    names = {f.name for f in fields(_EVENT_PARTS[key])}
                    event_getters.extend(attrgetter(f"{key}.{name}") for name in deeper
                                         if name in names)  # others are always null
                elif key != "schema":  # schema is a constant; unknown keys are always null
                    if key == "raw":
                        return None
        elif root == "risk":
            if not isinstance(sub, dict):
                return None
            for key, deeper in sub.items():
                if key in _RISK_VALUES:
                    risk_getters.append(_RISK_VALUES[key])
                elif key == "detection":  # a function of these attributes, whole or in part
                    wanted = _DETECTION_VALUES if not isinstance(deeper, dict) else \
                        tuple(name for name in _DETECTION_VALUES if name in deeper)
                    detection_getters.extend(attrgetter(name) for name in wanted)
                elif key == "reasons":
                    return None
        # vars are fixed per playbook; other roots are not in the context (always null)
    return tuple(event_getters), tuple(risk_getters), tuple(detection_getters)


# What dedupe reads of the event, whatever the triggers read.
_DEDUPE_READS: dict[str, Reads] = {"file": WHOLE, "actor": WHOLE}


def _keys(read: Reads | None, always: Reads) -> frozenset[str] | None:
    """The top-level keys of a context part to build (None: all of them)."""
    merged = merge_reads(always, read if read is not None else {})
    return frozenset(merged) if isinstance(merged, dict) else None


class Router:
    """Chooses, per event, the playbooks whose trigger holds and that did not start already."""

    def __init__(self, playbooks: Iterable[Playbook], *,
                 window_seconds: float = DEFAULT_WINDOW_SECONDS,
                 store: DedupeStore | None = None, variables: dict[str, Any] | None = None):
        self.window_seconds = window_seconds
        self.store: DedupeStore = store if store is not None else InMemoryDedupe()
        self.playbooks: dict[str, Playbook] = {}
        self.untriggered: list[str] = []  # loaded but never routed to: no trigger
        routes: list[_Route] = []
        read: Reads = {}
        pure = True
        for playbook in playbooks:
            other = self.playbooks.get(playbook.name)
            if other is not None:
                raise RoutingError(f"two playbooks are named '{playbook.name}': {other.source} "
                                   f"and {playbook.source}")
            self.playbooks[playbook.name] = playbook
            if not playbook.trigger_if:
                self.untriggered.append(playbook.name)
                continue
            routes.append(_Route(playbook, evaluator(playbook.trigger_if),  # fails now
                                 {**playbook.vars, **(variables or {})},
                                 RouteDecision(playbook.name, False, False, "trigger is false"),
                                 RouteDecision(playbook.name, True, True, "trigger matched")))
            read = merge_reads(read, reads(playbook.trigger_if))
            pure = pure and is_pure(playbook.trigger_if)
        self._routes = tuple(routes)
        # Only what some trigger reads (plus the file and person dedupe needs) is put in the
        # context triage builds per event; see expressions.reads.
        self.event_keys = _keys(read.get("event") if isinstance(read, dict) else read,
                                _DEDUPE_READS)
        self.risk_keys = _keys(read.get("risk") if isinstance(read, dict) else read, {})
        # Triggers are pure functions of the few values they read, and a feed repeats the
        # same few combinations (departing or not, model or not, a destination kind, a
        # level): each combination's outcome is computed once (see route_event).
        self._getters: _Getters | None = _memo_getters(read) if pure else None
        self._memo: dict[Any, _Outcome] = {}

    @property
    def routed(self) -> list[str]:
        return [route.playbook.name for route in self._routes]

    def route(self, event: dict[str, Any], risk: dict[str, Any], *, at: float,
              claim: bool = False) -> list[RouteDecision]:
        """A decision per triggered playbook. `claim` records the starts (respond does; triage
        only looks); `at` is the event time in epoch seconds. `event` and `risk` need hold
        only the keys in `event_keys` and `risk_keys`."""
        return self._decide(self._evaluate(event, risk), event, at, claim)

    def route_event(self, event: ModelMovementEvent, risk: RiskScore, detection: Detection, *,
                    at: float, claim: bool = False) -> list[RouteDecision]:
        """`route` for a triaged event (already `with_detection`), building only the data
        the triggers read, and only for a combination of read values not seen before."""
        getters = self._getters
        key = None
        if getters is not None:
            values = tuple([get(event) for get in getters[0]] + [get(risk) for get in getters[1]]
                           + [get(detection) for get in getters[2]])
            key = (values, tuple(map(type, values)))  # 1 == True == 1.0 in Python only
            try:
                outcome = self._memo.get(key)
            except TypeError:  # a value that cannot be a key (a list set by hand): evaluate
                outcome, key = None, None
            if outcome is not None:
                return self._decide(outcome, event, at, claim)
        risk_keys = self.risk_keys
        risk_data = risk.to_dict(only=risk_keys)
        if risk_keys is None or "detection" in risk_keys:
            risk_data["detection"] = detection_data(detection)
        outcome = self._evaluate(event.to_dict(only=self.event_keys), risk_data)
        if key is not None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = outcome
        return self._decide(outcome, event, at, claim)

    def _evaluate(self, event: dict[str, Any], risk: dict[str, Any]) -> _Outcome:
        outcome: list[RouteDecision | None] = []
        for route in self._routes:
            try:
                hit = truthy(route.trigger({"event": event, "risk": risk, "vars": route.vars}))
            except ExpressionError as exc:
                outcome.append(RouteDecision(route.playbook.name, False, False,
                                             f"trigger failed: {exc}"))
                continue
            outcome.append(None if hit else route.not_matched)
        return tuple(outcome)

    def _decide(self, outcome: _Outcome, event: dict[str, Any] | ModelMovementEvent, at: float,
                claim: bool) -> list[RouteDecision]:
        decisions: list[RouteDecision] = []
        for route, decided in zip(self._routes, outcome, strict=True):
            if decided is not None:
                decisions.append(decided)
                continue
            before = self._dedupe(route.playbook.name, event, at, claim)
            if before is None:
                decisions.append(route.matched)
                continue
            ago = at - before
            when = "at the same time" if ago == 0 else \
                f"{_duration(abs(ago))} {'earlier' if ago > 0 else 'later'}"
            decisions.append(RouteDecision(
                route.playbook.name, True, False,
                f"duplicate: already started for this file and person (event {when}, window "
                f"{_duration(self.window_seconds)})"))
        return decisions

    def _dedupe(self, name: str, event: dict[str, Any] | ModelMovementEvent, at: float,
                claim: bool) -> float | None:
        if self.window_seconds <= 0:
            return None
        key = dedupe_key(name, event)
        if claim:
            return self.store.claim(key, at, self.window_seconds)
        return self.store.last_start(key, at, self.window_seconds)


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


# --- the triage pipeline -----------------------------------------------------------------------


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


def detection_data(detection: Detection) -> dict[str, Any]:
    """The detection as playbooks see it under `risk.detection` (without the details)."""
    data = detection.to_dict()
    data.pop("details", None)
    return data


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
                 history: InMemoryHistory | None = None):
        self.policy = policy
        self.router = router
        self.index = index
        self.history = history if history is not None else InMemoryHistory()
        # The scores of recent events, in two generations of plain dicts (cheaper than an
        # OrderedDict per event): between RECENT_EVENTS/2 and RECENT_EVENTS are kept.
        self._scored: dict[tuple[str, str], Any] = {}  # RiskScore.packed()
        self._scored_before: dict[tuple[str, str], Any] = {}

    def close(self) -> None:
        """Release the dedupe store's and the index's files."""
        for resource in (self.router.store, self.index):
            close = getattr(resource, "close", None)
            if close is not None:
                close()

    def triage(self, raw: Any, *, claim: bool = False,
               content: ContentSource | None = None) -> list[Verdict]:
        """Every event in a payload (one event, a list, an Incydr alert or search answer)."""
        events = normalise_many(raw, options=self.policy.options,
                                mappings=self.policy.mappings.values())
        return [self.triage_event(event, claim=claim, content=content) for event in events]

    def triage_event(self, event: ModelMovementEvent, *, claim: bool = False,
                     content: ContentSource | None = None) -> Verdict:
        detection = detect(event, content=content, index=self.index)
        key = (event.origin, event.id)
        packed = self._scored.get(key) or self._scored_before.get(key)
        if packed is not None:
            risk = RiskScore.unpacked(packed)
        else:
            risk = score(event, detection, self.policy, self.history)
            if len(self._scored) >= self.RECENT_EVENTS // 2:
                self._scored_before, self._scored = self._scored, {}
            self._scored[key] = risk.packed()
            self.history.record(event, detection, risk if leaves(event) else None,
                                violation_level=self.policy.violation_level)
        event = event.with_detection(detection)
        router = self.router
        decisions = router.route_event(event, risk, detection, at=event.time.timestamp(),
                                       claim=claim)
        chosen = [router.playbooks[d.playbook] for d in decisions if d.chosen]
        return Verdict(event, detection, risk, decisions, chosen)


def build_triage(policy: Policy, host: PluginHost, *, variables: dict[str, Any] | None = None,
                 playbooks: Sequence[Path] = (), store: DedupeStore | None = None,
                 index: FingerprintIndex | None = None,
                 history: InMemoryHistory | None = None) -> Triage:
    """A Triage set up from the policy's `routing` section (and extra playbook paths).

    Candidates: the policy's playbooks, then (unless `shipped_playbooks: false`) the shipped
    ones and those plugins register. `store` and `index` override the policy's files."""
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
    return Triage(policy, router, index=index, history=history)
