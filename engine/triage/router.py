"""Routing: which playbooks an event starts, and none twice.

A playbook is a candidate when its `trigger.if` (JMESPath over `{event, risk, vars}`) is true.
Triggers are compiled when the router is built; per event, the context holds only the parts of
the event and the score that some trigger reads (and the file and person dedupe needs), and a
combination of read values seen before is decided from memory (the memo). One event never
starts the same playbook twice for the same file and person within the dedupe window (see
triage.dedupe). Also here: the policy's `routing` settings and loading the candidate
playbooks.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExpressionError, Problem, RoutingError, SpecError
from ..expressions import (
    WHOLE,
    Reads,
    evaluator,
    is_pure,
    merge_reads,
    reads,
    truthy,
)
from ..journal.dedupe_claims import DedupeClaim
from ..loader import load_file
from ..scenarios.format import SCENARIO_SUFFIXES
from ..spec import Playbook, inspect_document
from .dedupe import DedupeStore, InMemoryDedupe, claimant_digest, dedupe_key
from .detection.formats import Detection
from .events.model import Actor, Destination, Device, FileInfo, ModelMovementEvent, Source
from .policy import Policy
from .risk.types import RiskScore

if TYPE_CHECKING:
    from ..actions import Action

DEFAULT_WINDOW_SECONDS = 3600.0
PLAYBOOK_SUFFIXES = (".yaml", ".yml", ".json")
_WINDOW = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


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
    # `fingerprints_refresh`: how often the service refreshes the index, and from where (empty:
    # every registry plugin the connections file reaches).
    refresh_seconds: float | None = None
    refresh_registries: tuple[str, ...] = ()

    @classmethod
    def from_policy(cls, policy: Policy) -> RoutingSettings:
        section = dict(policy.data.get("routing") or {})
        base = Path(policy.source).resolve().parent if not policy.source.startswith("<") \
            else Path.cwd()

        def resolve(text: str | None) -> Path | None:
            return None if text is None else (base / Path(text).expanduser())

        refresh = dict(section.get("fingerprints_refresh") or {})

        return cls(playbooks=tuple(base / Path(p).expanduser()
                                   for p in section.get("playbooks") or ()),
                   shipped_playbooks=bool(section.get("shipped_playbooks", True)),
                   window_seconds=parse_window(section.get("dedupe_window")),
                   dedupe_store=resolve(section.get("dedupe_store")),
                   fingerprints=resolve(section.get("fingerprints")),
                   refresh_seconds=parse_window(refresh["interval"]) if refresh else None,
                   refresh_registries=tuple(refresh.get("registries") or ()))


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


def _candidates(paths: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Each playbook file once, with whether it was found in a directory (not named)."""
    found: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found.extend((p, True) for p in sorted(path.iterdir())
                         if p.is_file() and not p.name.startswith(".")
                         and p.name.endswith(PLAYBOOK_SUFFIXES)
                         and not p.name.endswith(SCENARIO_SUFFIXES))
        else:
            found.append((path, False))
    unique: dict[Path, tuple[Path, bool]] = {}
    for path, in_directory in found:
        unique.setdefault(path.resolve(), (path, in_directory))
    return list(unique.values())


def playbook_files(paths: Iterable[Path]) -> list[Path]:
    """Playbook files named directly or found (not recursively) in directories; scenario
    files and hidden files in a directory are not playbooks."""
    return [path for path, _ in _candidates(paths)]


def _is_playbook(data: Any) -> bool:
    """A document found in a directory is a playbook when it has steps: a policy, a
    connections file or an event kept beside the playbooks is not one."""
    return isinstance(data, dict) and "steps" in data


def load_playbooks(paths: Iterable[Path], actions: dict[str, Action] | None) -> list[Playbook]:
    """Load and check every playbook, reporting every broken one at once. A file that a
    directory holds and that reads as something other than a playbook is skipped; one that
    does not read at all is reported, as it may be a broken playbook."""
    playbooks: list[Playbook] = []
    problems: list[Problem] = []
    for path, in_directory in _candidates(paths):
        try:
            doc = load_file(path)
            if in_directory and not _is_playbook(doc.data):
                continue
            playbooks.append(inspect_document(doc, actions))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return playbooks


# --- the router --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteDecision:
    """What routing made of one playbook for one event."""

    playbook: str
    matched: bool
    chosen: bool
    reason: str
    # Not chosen because this very claimant (an intake item processed again) had started
    # the run before its processing stopped: that run is the event's (the takeover of lapsed
    # runs finishes it).
    continues: str | None = None

    def to_dict(self) -> dict[str, Any]:
        found = {"playbook": self.playbook, "matched": self.matched, "chosen": self.chosen,
                 "reason": self.reason}
        if self.continues is not None:
            found["continues"] = self.continues
        return found


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
# Each an attribute's name, or a getter where the value is not an attribute as it is.
_RISK_VALUES: dict[str, str | _Getter] = {
    "score": "score", "level": "level", "indicators": lambda risk: tuple(risk.indicators),
    "evidence": "evidence"}
_MEMO_SIZE = 65_536


# One per part (event, score, detection): the values of it the triggers read, as a tuple.
_Gather = Callable[[Any], tuple[Any, ...]]
_Getters = tuple[_Gather, _Gather, _Gather]
# What `risk.detection` holds (detection_data): each a value or a frozen, hashable object.
_DETECTION_VALUES = ("is_model", "format", "confidence", "method", "evidence", "disguised",
                     "match", "strength", "evidence_kind")


def _gather(wanted: list[str | _Getter]) -> _Gather:
    """A part's values in one call: attribute names read by one `attrgetter` (one C call for
    them all, the hot path of routing), else each getter in turn."""
    if not wanted:
        return lambda part: ()
    if all(isinstance(item, str) for item in wanted):
        get = attrgetter(*wanted)  # type: ignore[arg-type]
        return get if len(wanted) > 1 else lambda part: (get(part),)
    getters = [attrgetter(item) if isinstance(item, str) else item for item in wanted]
    return lambda part: tuple([get(part) for get in getters])


def _memo_getters(read: Reads) -> _Getters | None:
    """Getters of the event, score and detection attributes behind every value the triggers
    read, or None when they read something that is not such a value (all of the event, its
    raw payload, the reasons): then every event is evaluated in full.

    The data a trigger sees is a function of these attributes (to_dict converts each one on
    its own), so equal attributes give equal decisions."""
    if not isinstance(read, dict):
        return None
    event_values: list[str | _Getter] = []
    risk_values: list[str | _Getter] = []
    detection_values: list[str | _Getter] = []
    for root, sub in read.items():
        if root == "event":
            if not isinstance(sub, dict):
                return None
            for key, deeper in sub.items():
                if key in _EVENT_VALUES:
                    event_values.append(key)
                elif key in _EVENT_PARTS:
                    if not isinstance(deeper, dict):
                        return None  # the whole of event.actor, say
                    names = {f.name for f in fields(_EVENT_PARTS[key])}
                    event_values.extend(f"{key}.{name}" for name in deeper
                                        if name in names)  # others are always null
                elif key != "schema":  # schema is a constant; unknown keys are always null
                    if key == "raw":
                        return None
        elif root == "risk":
            if not isinstance(sub, dict):
                return None
            for key, deeper in sub.items():
                if key in _RISK_VALUES:
                    risk_values.append(_RISK_VALUES[key])
                elif key == "detection":  # a function of these attributes, whole or in part
                    detection_values.extend(
                        _DETECTION_VALUES if not isinstance(deeper, dict) else
                        [name for name in _DETECTION_VALUES if name in deeper])
                elif key == "reasons":
                    return None
        # vars are fixed per playbook; other roots are not in the context (always null)
    return _gather(event_values), _gather(risk_values), _gather(detection_values)


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
        self._by_name = {route.playbook.name: route for route in routes}
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
              claim: bool = False, claimant: str | None = None) -> list[RouteDecision]:
        """A decision per triggered playbook. `claim` records the starts (respond does; triage
        only looks); `at` is the event time in epoch seconds. `event` and `risk` need hold
        only the keys in `event_keys` and `risk_keys`. A start that `claimant` claimed
        itself is no duplicate (see `claim`)."""
        return self._decide(self._evaluate(event, risk), event, at, claim, claimant)

    def route_event(self, event: ModelMovementEvent, risk: RiskScore, detection: Detection, *,
                    at: float, claim: bool = False,
                    claimant: str | None = None) -> list[RouteDecision]:
        """`route` for a triaged event (already `with_detection`), building only the data
        the triggers read, and only for a combination of read values not seen before. A
        start that `claimant` claimed itself is no duplicate (see `claim`)."""
        getters = self._getters
        key = None
        if getters is not None:
            values = getters[0](event) + getters[1](risk) + getters[2](detection)
            key = (values, tuple(map(type, values)))  # 1 == True == 1.0 in Python only
            try:
                outcome = self._memo.get(key)
            except TypeError:  # a value that cannot be a key (a list set by hand): evaluate
                outcome, key = None, None
            if outcome is not None:
                return self._decide(outcome, event, at, claim, claimant)
        risk_keys = self.risk_keys
        risk_data = risk.to_dict(only=risk_keys)
        if risk_keys is None or "detection" in risk_keys:
            risk_data["detection"] = detection_data(detection)
        outcome = self._evaluate(event.to_dict(only=self.event_keys), risk_data)
        if key is not None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = outcome
        return self._decide(outcome, event, at, claim, claimant)

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
                claim: bool, claimant: str | None = None) -> list[RouteDecision]:
        decisions: list[RouteDecision] = []
        for route, decided in zip(self._routes, outcome, strict=True):
            if decided is not None:
                decisions.append(decided)
                continue
            if claimant is not None and claim:
                decisions.append(self.claim(route.playbook.name, event, at=at,
                                            claimant=claimant))
                continue
            before = self._dedupe(route.playbook.name, event, at, claim)
            if before is not None and claimant is not None and \
                    self._own(route.playbook.name, event, before, claimant) is not None:
                before = None  # its own claim, from an attempt that stopped: `claim` decides
            decisions.append(route.matched if before is None else
                             self._duplicate(route.playbook.name, event, at, before))
        return decisions

    def _duplicate(self, name: str, event: dict[str, Any] | ModelMovementEvent, at: float,
                   before: float) -> RouteDecision:
        ago = at - before
        when = "at the same time" if ago == 0 else \
            f"{_duration(abs(ago))} {'earlier' if ago > 0 else 'later'}"
        run_id = self.store.run_of(dedupe_key(name, event))
        by = (f" by run {run_id} (if it failed: `crownguard rerun {run_id}` runs it again "
              "with the same event)") if run_id else ""
        return RouteDecision(name, True, False,
                             f"duplicate: already started for this file and person (event "
                             f"{when}, window {_duration(self.window_seconds)}){by}")

    # Claims made apart from routing: respond routes looking only, checks that each chosen
    # run can start, and then claims it; a claim whose run could not start is released.

    def claim(self, name: str, event: dict[str, Any] | ModelMovementEvent, *,
              at: float, claimant: str | None = None,
              run_exists: Callable[[str], bool] | None = None) -> RouteDecision:
        """Claim the start of playbook `name` (whose trigger matched) for the event: the
        `trigger matched` decision, or the duplicate one when it started already.

        `claimant` names who claims, for a caller that may process the same input again
        after a crash (the service's intake item): a claim it finds that it made itself is
        not a duplicate. If the run noted for it is in the journal (`run_exists`), that run
        is the event's (`continues`); if none reached the journal (killed between the claim
        and the run), the playbook starts now, under the same claim."""
        if self.window_seconds <= 0:
            return self._by_name[name].matched
        before = self.store.claim(dedupe_key(name, event), at, self.window_seconds,
                                  None if claimant is None else claimant_digest(claimant))
        if before is None:
            return self._by_name[name].matched
        if claimant is not None:
            own = self._own(name, event, before, claimant)
            if own is not None:
                if own.run_id is not None and (run_exists is None or run_exists(own.run_id)):
                    return RouteDecision(name, True, False, "started for this event before "
                                         f"its processing stopped: run {own.run_id} (taken "
                                         "over once its lease lapses)", continues=own.run_id)
                return RouteDecision(name, True, True, "trigger matched (claimed for this "
                                     "event before its processing stopped, no run in the "
                                     "journal: started now)")
        return self._duplicate(name, event, at, before)

    def _own(self, name: str, event: dict[str, Any] | ModelMovementEvent, before: float,
             claimant: str) -> DedupeClaim | None:
        """The claim found at `before`, if `claimant` made it."""
        own = self.store.claim_of(dedupe_key(name, event))
        return own if own is not None and own.at == before and \
            own.claimant == claimant_digest(claimant) else None

    def started(self, name: str, event: dict[str, Any] | ModelMovementEvent, *, at: float,
                run_id: str) -> None:
        """Note the run a claim started (a later duplicate names it)."""
        if self.window_seconds > 0:
            self.store.started(dedupe_key(name, event), at, run_id)

    def release(self, name: str, event: dict[str, Any] | ModelMovementEvent, *,
                at: float) -> None:
        """Forget the claim made for the event: its run could not start."""
        if self.window_seconds > 0:
            self.store.release(dedupe_key(name, event), at)

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


def detection_data(detection: Detection) -> dict[str, Any]:
    """The detection as playbooks see it under `risk.detection` (without the details)."""
    data = detection.to_dict()
    data.pop("details", None)
    return data
