"""Deciding a model access request: the policy's `access` section and the requester's risk.

Pure: a request, the model's registry tags, the policy and the time in; a Decision out
(grant, ask an approver, deny, or not needed), with every reason. The requester is scored with
the risk engine's own indicators for a person (departing, watchlists, notice period, high-risk
periods, off hours, prior violations) plus the model's sensitivity. What a request has no file
event for is approximated: the person's facts come from the policy's `access.people` (what HR
and the insider-risk watchlists say), not from an Incydr event, and prior violations are the
count given there, not the triage history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from ..triage.events import Actor, Destination, FileInfo, ModelMovementEvent
from ..triage.policy import Policy
from ..triage.risk import Reason, RiskScore
from ..triage.risk.scoring import _off_hours, _periods, _person
from ..triage.risk.types import LEVELS
from .access_store import NewRequest

DEFAULT_MAX_HOURS = 72.0
DEFAULT_HOURS = 8.0
DEFAULT_MIN_JUSTIFICATION = 20
DEFAULT_AUTO_GRANT_BELOW = 25.0
DEFAULT_TWO_APPROVERS_FROM = 60.0
# Indicators that deny a request outright (an admin may override).
DENYING = ("departing_employee", "notice_period")


class Outcome(StrEnum):
    GRANT = "grant"            # low risk: granted with the justification recorded
    ASK = "ask"                # an approver (two from `two_approvers_from`) decides
    DENY = "deny"              # departing or in the notice period: only an admin overrides
    NOT_NEEDED = "not_needed"  # the policy does not manage access to this model


@dataclass(frozen=True)
class PersonFacts:
    departing: bool = False
    departure_date: date | None = None
    watchlists: tuple[str, ...] = ()
    prior_violations: int = 0
    timezone: str | None = None


@dataclass(frozen=True)
class AccessPolicy:
    model_tag: str | None
    model_values: frozenset[str]
    model_names: frozenset[str]
    max_seconds: int
    default_seconds: int
    min_justification: int
    owner_tag: str | None
    approver_people: tuple[str, ...]
    approver_role: str
    auto_grant_below: float
    two_approvers_from: float
    people: dict[str, PersonFacts]

    def manages(self, model: str, tags: dict[str, str]) -> bool:
        if model in self.model_names:
            return True
        if self.model_tag is None or self.model_tag not in tags:
            return False
        return not self.model_values or tags[self.model_tag].lower() in self.model_values

    def approvers(self, tags: dict[str, str]) -> tuple[str, ...]:
        """The people who may approve for this model (empty: anyone of `approver_role`)."""
        owner = tags.get(self.owner_tag) if self.owner_tag else None
        named = [p.strip() for p in (owner or "").split(",") if p.strip()]
        return tuple(dict.fromkeys([*named, *self.approver_people]))


def access_policy(policy: Policy) -> AccessPolicy:
    """The `access` section of a validated policy, with defaults for what it leaves out."""
    data: dict[str, Any] = policy.data.get("access") or {}
    models = data.get("models") or {}
    approvers = data.get("approvers") or {}
    people = {}
    for name, facts in (data.get("people") or {}).items():
        leaves = facts.get("departure_date")
        people[str(name).lower()] = PersonFacts(
            bool(facts.get("departing", False)),
            date.fromisoformat(leaves) if isinstance(leaves, str) else None,
            tuple(str(w) for w in facts.get("watchlists") or ()),
            int(facts.get("prior_violations", 0)), facts.get("timezone"))
    most = float(data.get("max_duration_hours", DEFAULT_MAX_HOURS))
    return AccessPolicy(
        model_tag=models.get("tag", "sensitivity" if "names" not in models else None),
        model_values=frozenset(str(v).lower() for v in models.get("values", ())),
        model_names=frozenset(str(n) for n in models.get("names", ())),
        max_seconds=round(most * 3600),
        default_seconds=round(min(float(data.get("default_duration_hours", DEFAULT_HOURS)),
                                  most) * 3600),
        min_justification=int(data.get("min_justification", DEFAULT_MIN_JUSTIFICATION)),
        owner_tag=approvers.get("owner_tag", "owner"),
        approver_people=tuple(str(p) for p in approvers.get("people", ())),
        approver_role=str(approvers.get("role", "approver")),
        auto_grant_below=float(data.get("auto_grant_below", DEFAULT_AUTO_GRANT_BELOW)),
        two_approvers_from=float(data.get("two_approvers_from", DEFAULT_TWO_APPROVERS_FROM)),
        people=people)


def request_problems(new: NewRequest, rules: AccessPolicy) -> list[str]:
    """What is wrong with a request as asked (empty: it can be decided)."""
    problems = []
    why = new.justification.strip()
    if len(why) < rules.min_justification:
        problems.append(f"justification: say why in at least {rules.min_justification} "
                        f"characters (got {len(why)})")
    if new.duration_seconds <= 0:
        problems.append("duration: must be more than 0")
    elif new.duration_seconds > rules.max_seconds:
        problems.append(f"duration: at most {_hours(rules.max_seconds)} by policy (asked "
                        f"{_hours(new.duration_seconds)})")
    if not new.model.strip():
        problems.append("model: name the registered model")
    if new.version is not None and new.alias is not None:
        problems.append("give a version or an alias, not both")
    return problems


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    risk: RiskScore
    approvals_required: int = 0
    approvers: tuple[str, ...] = ()
    run_id: str | None = None  # the model-access-request run that made it

    def to_dict(self) -> dict[str, Any]:
        made = {"outcome": str(self.outcome), "reason": self.reason,
                "risk": self.risk.to_dict(), "approvals_required": self.approvals_required,
                "approvers": list(self.approvers)}
        return {**made, "run_id": self.run_id} if self.run_id else made


def requester_risk(new: NewRequest, tags: dict[str, str], policy: Policy,
                   rules: AccessPolicy, now: datetime) -> RiskScore:
    """The requester scored with the risk engine's person indicators at the time of asking."""
    facts = rules.people.get(new.requester.lower(), PersonFacts())
    actor = Actor(email=new.requester, timezone=facts.timezone, departing=facts.departing,
                  departure_date=facts.departure_date, watchlists=facts.watchlists)
    # The scorer's person indicators read an event; this one stands for the request.
    event = ModelMovementEvent(id="access-request", time=now, actor=actor,
                               file=FileInfo(name=new.model), destination=Destination())
    reasons: list[Reason] = []
    add = reasons.append
    if actor.departing or actor.departure_date or actor.watchlists:
        _person(event, policy, add)
    zone = policy.zone(actor.timezone) if actor.timezone else policy.timezone
    local = now.astimezone(zone)
    _off_hours(local, zone.key, policy, add)
    _periods(event, local.date(), policy, add)
    tag = (tags.get("sensitivity") or "").lower()
    weight = policy.sensitivity.get(tag, policy.sensitivity.get("default", 0)) if tag else 0
    if weight:
        add(Reason("model_sensitivity", weight, f"the model is tagged {tag}"))
    if facts.prior_violations:
        w = policy.weights
        add(Reason("prior_violations", min(w["prior_violation"] * facts.prior_violations,
                                           w["prior_violations_max"]),
                   f"{facts.prior_violations} earlier violation"
                   f"{'s' if facts.prior_violations != 1 else ''}"))
    reasons = [r for r in reasons if r.weight]
    value = max(0, min(100, round(sum(r.weight for r in reasons))))
    return RiskScore(value, LEVELS[policy.level_for(value)], tuple(reasons), None)


def decide(new: NewRequest, tags: dict[str, str], policy: Policy,
           now: datetime | None = None) -> Decision:
    """The policy's answer to a request, with why."""
    rules = access_policy(policy)
    risk = requester_risk(new, tags, policy, rules, now or datetime.now(UTC))
    approvers = rules.approvers(tags)
    if not rules.manages(new.model, tags):
        return Decision(Outcome.NOT_NEEDED, f"{new.model} is not a model the access policy "
                        "manages: its registry's own permissions apply", risk)
    denying = [r for r in risk.reasons if r.indicator in DENYING]
    if denying:
        return Decision(Outcome.DENY, f"denied: {'; '.join(r.detail for r in denying)} "
                        "(only an admin can override)", risk, 1, approvers)
    summary = f"risk {risk.score} ({risk.level})" + (
        f": {'; '.join(r.detail for r in risk.reasons)}" if risk.reasons else "")
    if risk.score < rules.auto_grant_below:
        return Decision(Outcome.GRANT, f"granted by policy: {summary}, below "
                        f"{rules.auto_grant_below:g}", risk)
    two = risk.score >= rules.two_approvers_from
    who = ", ".join(approvers) if approvers else f"any {rules.approver_role}"
    return Decision(Outcome.ASK, f"{'two approvals' if two else 'an approval'} needed from "
                    f"{who}: {summary}", risk, 2 if two else 1, approvers)


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g}h"
