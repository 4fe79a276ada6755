"""Contextual risk: a 0-100 score and a level, with every reason and its weight.

Negligence and theft look alike on the wire; the context tells them apart. Each indicator
that fires adds its policy weight and one human-readable reason, so an analyst sees why a
score is what it is. A file that is not a model is capped (policy `non_model_cap`), and one
only suspected to be a model too (`suspected_model_cap`), with a reason that says so: the
weights of the reasons always add up to the score before the 0-100 clamp.

The value types (RiskLevel, Reason, RiskScore) live in risk.types.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from ..detection import Detection, Method, ModelFormat, Strength
from ..detection.evidence import Evidence
from ..events import Destination, DestinationKind, ModelMovementEvent
from ..events.classify import domain_matches
from ..policy import Policy
from .access_facts import AccessSource, access_reasons
from .history import History, HistoryFacts, model_key
from .types import LEVELS, Reason, RiskScore, format_weight

_DESTINATION_WORDS = {
    DestinationKind.REMOVABLE_MEDIA: "removable media", DestinationKind.PERSONAL_CLOUD:
    "personal cloud storage", DestinationKind.PERSONAL_EMAIL: "personal e-mail",
    DestinationKind.GENAI_TOOL: "a generative-AI tool or model hub",
    DestinationKind.WEB_UPLOAD: "a web upload",
    DestinationKind.GIT_PUSH: "a git push", DestinationKind.SYNC_APP: "a sync app",
    DestinationKind.CLOUD_SHARE: "a cloud share", DestinationKind.EMAIL: "external e-mail",
    DestinationKind.PRINTER: "a printer", DestinationKind.ENDPOINT: "the endpoint",
    DestinationKind.UNKNOWN: "an unknown destination"}


def score(event: ModelMovementEvent, detection: Detection, policy: Policy,
          history: History | HistoryFacts | None = None, *,
          access: AccessSource | None = None) -> RiskScore:
    """Score one event in context. Pure: reads the history (and the person's access
    requests, with `access`), never writes them."""
    facts = history if isinstance(history, HistoryFacts) or history is None \
        else history.facts(event, detection)
    w = policy.weights
    reasons: list[Reason] = []
    add = reasons.append
    if detection.is_model:
        add(_model_file(w["model_file"], detection.format, detection.method,
                        detection.confidence))
        if detection.disguised and detection.strength is Strength.STRONG:
            add(Reason("disguised_file", w["disguised_file"],
                       f"a model named '{event.file.name}', as if it were another kind of file"))
        elif detection.disguised:  # only the name and the tool's byte type disagree
            add(Reason("disguised_file", round(w["disguised_file"] / 3, 1),
                       f"possibly a model named '{event.file.name}' as another kind of file "
                       "(suspected, not shown by strong evidence)"))
    match = detection.match
    if match is not None:
        add(Reason("registered_model", w["registered_model"],
                   f"exact match to registered model {match.model} v{match.version} "
                   f"({match.registry})"))
        tag = (match.sensitivity or "").lower()
        weight = policy.sensitivity.get(tag, policy.sensitivity.get("default", 0)) if tag else 0
        if weight:
            add(Reason("model_sensitivity", weight, f"the model is tagged {tag}"))
    actor = event.actor
    if actor.departing or actor.departure_date or actor.watchlists:
        _person(event, policy, add)
    _destination(event, policy, add)
    zone = policy.zone(actor.timezone) if actor.timezone else policy.timezone
    local = event.time.astimezone(zone)
    _off_hours(local, zone.key, policy, add)
    if actor.departure_date is not None or policy.periods:
        _periods(event, local.date(), policy, add)
    if facts is not None:
        _history(event, detection, facts, policy, add)
    if access is not None and match is not None:
        access_reasons(event, detection, access, policy, add)
    reasons = [r for r in reasons if r.weight]  # an indicator weighted 0 by policy is off
    total = sum([r.weight for r in reasons])
    if not detection.is_model and total > policy.non_model_cap:
        cap = policy.non_model_cap
        reasons.append(Reason("not_a_model", round(cap - total, 1),
                              f"not a model file: the score is capped at {format_weight(cap)}"))
        total = policy.non_model_cap
    elif detection.strength is Strength.MODERATE and total > policy.suspected_model_cap:
        cap = policy.suspected_model_cap
        reasons.append(Reason("suspected_model", round(cap - total, 1),
                              f"only suspected to be a model ({detection.method}, confidence "
                              f"{detection.confidence:.2f}): the score is capped at "
                              f"{format_weight(cap)}"))
        total = cap
    value = max(0, min(100, round(total)))
    return RiskScore(value, LEVELS[policy.level_for(value)], tuple(reasons),
                     _summary(detection.method, detection.strength, detection.confidence))


# Reasons and evidence summaries, made once per combination of what they say: a feed repeats
# the same few formats, confidences, hours, destinations and counts of earlier violations all
# day, and formatting a float costs more than the rest of a reason. Scores share these objects
# (Reason and Evidence are values: nothing assigns to their fields). Bounded: cleared when full.
class _Cache(dict[tuple[Any, ...], Any]):
    """Made objects by what they say; cleared when it holds `size` of them."""

    __slots__ = ("size",)

    def __init__(self, size: int = 4096):
        super().__init__()
        self.size = size


def _cached(cache: _Cache, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    found = cache.get(key)
    if found is None:
        if len(cache) >= cache.size:
            cache.clear()
        found = cache[key] = make()
    return found


_MODEL_FILE = _Cache()
_SUMMARIES = _Cache()


def _model_file(weight: float, fmt: ModelFormat | None, method: Method,
                confidence: float) -> Reason:
    """The model_file reason."""
    # The types too: 1 == 1.0 as a key, but a weight of 20 prints apart from 20.0.
    key = (weight, weight.__class__, fmt, method, confidence, confidence.__class__)
    return _cached(_MODEL_FILE, key, lambda: Reason(
        "model_file", round(weight * confidence, 1),
        f"{str(fmt) if fmt else 'model'} model file ({method}, confidence {confidence:.2f})"))


def _summary(method: Method, strength: Strength, confidence: float) -> Evidence:
    """Detection.summary, shared between scores (Evidence is frozen)."""
    return _cached(_SUMMARIES, (method, strength, confidence, confidence.__class__),
                   lambda: Evidence(method, strength, confidence))


def _person(event: ModelMovementEvent, policy: Policy, add: Any) -> None:
    actor = event.actor
    others = [wl for wl in actor.watchlists if wl != "DEPARTING_EMPLOYEE"]
    if actor.departing or actor.departure_date or "DEPARTING_EMPLOYEE" in actor.watchlists:
        detail = "departing employee"
        if actor.departure_date:
            detail += f" (leaves {actor.departure_date.isoformat()})"
        elif "DEPARTING_EMPLOYEE" in actor.watchlists:
            detail += " (on the DEPARTING_EMPLOYEE watchlist)"
        add(Reason("departing_employee", policy.weights["departing_employee"], detail))
    if others:
        default = policy.watchlists.get("default", 0)
        weights = [(policy.watchlists.get(wl, default), wl) for wl in others]
        weight, top = max(weights)
        if weight:
            add(Reason("watchlist", weight, f"on watchlist {', '.join(others)}"
                       + (f" (weight of {top})" if len(others) > 1 else "")))


def _destination(event: ModelMovementEvent, policy: Policy, add: Any) -> None:
    destination = event.destination
    if destination.trusted is True or (destination.domain and policy.trusted_domains and
                                       domain_matches(destination.domain, policy.trusted_domains)):
        return
    weight = policy.destination_weights.get(str(destination.kind), 0)
    if not weight:
        return
    add(_cached(_DESTINATIONS, (weight, weight.__class__, destination.kind,
                                destination.trusted is False, destination.name,
                                destination.domain),
                lambda: Reason("untrusted_destination", weight,
                               _destination_detail(destination))))


_DESTINATIONS = _Cache()


def _destination_detail(destination: Destination) -> str:
    where = _DESTINATION_WORDS.get(destination.kind, str(destination.kind))
    named = f" ({destination.name or destination.domain})" if (destination.name
                                                              or destination.domain) else ""
    trust = "untrusted destination" if destination.trusted is False else \
        "destination of unknown trust"
    return f"{trust}: {where}{named}"


def _off_hours(local: datetime, zone_name: str, policy: Policy, add: Any) -> None:
    minutes = local.hour * 60 + local.minute
    weekday = local.weekday()
    start, end = policy.work_start, policy.work_end
    at_work = start <= minutes < end if start < end else minutes >= start or minutes < end
    if weekday in policy.work_days and at_work:  # start after end: a shift past midnight
        return
    weight = policy.weights["off_hours"]
    add(_cached(_OFF_HOURS, (weight, weight.__class__, minutes, weekday, zone_name),
                lambda: Reason("off_hours", weight,
                               f"off hours: {local.hour:02d}:{local.minute:02d} on a "
                               f"{_DAY_NAMES[weekday]} ({zone_name})")))


# A week has 10,080 minutes: a smaller cache, cleared when full, missed most of the time.
_OFF_HOURS = _Cache(16_384)


_DAY_NAMES = dict(enumerate(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                             "Saturday", "Sunday")))


def _periods(event: ModelMovementEvent, day: date, policy: Policy, add: Any) -> None:
    leaves = event.actor.departure_date
    if leaves is not None:
        if day > leaves:
            add(Reason("notice_period", policy.weights["notice_period"],
                       f"after the departure date {leaves.isoformat()}"))
        elif day >= leaves - timedelta(days=policy.notice_period_days):
            days = (leaves - day).days
            add(Reason("notice_period", policy.weights["notice_period"],
                       f"in the notice period: {days} day{'s' if days != 1 else ''} before "
                       f"leaving on {leaves.isoformat()}"))
    for period in policy.periods:
        if period.start <= day <= period.end:
            add(Reason("high_risk_period", period.weight,
                       f"during {period.name} ({period.start.isoformat()} to "
                       f"{period.end.isoformat()})"))


def _history(event: ModelMovementEvent, detection: Detection, facts: HistoryFacts,
             policy: Policy, add: Any) -> None:
    w = policy.weights
    if detection.is_model:
        total = facts.bytes_today + (event.file.size or 0)
        baseline = facts.baseline_daily_bytes
        if baseline is not None and baseline > 0:
            if total >= policy.volume_multiplier * baseline and total >= policy.volume_min_bytes:
                add(Reason("volume_spike", w["volume_spike"],
                           f"{_bytes(total)} of models today, {total / baseline:.1f}x the usual "
                           f"{_bytes(int(baseline))} a day"))
        elif total >= policy.volume_no_baseline_bytes:
            add(Reason("volume_spike", w["volume_spike"],
                       f"{_bytes(total)} of models today with no baseline yet"))
    if facts.prior_model_accesses == 0:
        key = model_key(event, detection)
        if key is not None:
            add(Reason("first_model_access", w["first_model_access"],
                       f"first time this person moves {key[1]}"))
    if (count := facts.prior_violations) > 0:
        each, most = w["prior_violation"], w["prior_violations_max"]
        add(_cached(_PRIOR_VIOLATIONS, (count, each, each.__class__, most, most.__class__),
                    lambda: Reason("prior_violations", min(each * count, most),
                                   f"{count} earlier violation{'s' if count != 1 else ''}")))


_PRIOR_VIOLATIONS = _Cache()


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"
