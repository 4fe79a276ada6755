"""What a person's model access requests say about an export of that model: context for scoring.

A file that the fingerprint index shows to be a registered model, moved by a person who holds
an active just-in-time grant for that model (docs/access.md), carries the grant into triage:
its id, justification and expiry, as a reason with the policy's `weights.access_granted`
(negative by default: the move was asked for, said why, and allowed). An export after the
grant ended (expired or revoked: `access_expired`) or after a request was denied
(`access_denied`) weighs more. What counts is the state at the time of the event, not at the
time it is scored: an alert triaged late still sees the grant that was active when the file
moved.

Triage only reads: an `AccessSource` answers which requests a person made for a model (the
service wing adapts the journal's access-request store to it). Without one, scores are as
before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from .types import Reason

if TYPE_CHECKING:
    from ..detection.formats import Detection
    from ..events.model import ModelMovementEvent
    from ..policy import Policy

# The policy keys (under `weights`) of the three reasons.
GRANTED, EXPIRED, DENIED = "access_granted", "access_expired", "access_denied"
JUSTIFICATION_SHOWN = 120  # characters of the justification a reason quotes


class RequestState(StrEnum):
    """An access request's state, as the access store spells it (a test keeps them equal)."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    GRANTED = "granted"
    EXPIRED = "expired"
    REVOKED = "revoked"


# States of a request that was granted at some time.
_WAS_GRANTED = frozenset({RequestState.GRANTED, RequestState.EXPIRED, RequestState.REVOKED})


@dataclass(frozen=True, slots=True)
class AccessFact:
    """One access request of a person for a registered model, as triage needs it.

    granted_at and expires_at: the grant's window (None: never granted); ended_at: when it
    was taken back (expired or revoked; None: not yet); decided_at: when it was denied or
    approved."""

    request_id: str
    model: str
    state: RequestState
    justification: str
    created_at: datetime
    version: str | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    decided_at: datetime | None = None

    def active_at(self, moment: datetime) -> bool:
        """Whether the grant allowed access at `moment`."""
        if self.state not in _WAS_GRANTED or self.granted_at is None:
            return False
        return self.granted_at <= moment < self.end

    @property
    def end(self) -> datetime:
        """When the grant stopped allowing access: its expiry, or the revoke before it."""
        ends = [t for t in (self.expires_at, self.ended_at) if t is not None]
        return min(ends) if ends else datetime.max.replace(tzinfo=self.created_at.tzinfo)


class AccessSource(Protocol):
    """Where triage reads a person's access requests (read-only)."""

    def requests_for(self, person: str, model: str) -> Sequence[AccessFact]:
        """Every request `person` (an e-mail, any case) made for the registered model named
        `model`, newest first."""
        ...


class InMemoryAccess:
    """Access facts held in memory (tests, the demo's own checks)."""

    def __init__(self, facts: Sequence[tuple[str, AccessFact]] = ()):
        self._facts = [(person.lower(), fact) for person, fact in facts]

    def add(self, person: str, fact: AccessFact) -> None:
        self._facts.append((person.lower(), fact))

    def requests_for(self, person: str, model: str) -> list[AccessFact]:
        found = [f for p, f in self._facts if p == person.lower() and f.model == model]
        return sorted(found, key=lambda f: f.created_at, reverse=True)


def access_reasons(event: ModelMovementEvent, detection: Detection, source: AccessSource,
                   policy: Policy, add: Any) -> None:
    """Add the one reason the person's requests for the event's registered model give (none
    when the file is no registered model, or nothing was asked before the event)."""
    match = detection.match
    if match is None:
        return
    moment = event.time
    # Only what was decided by then counts (a request made, granted or denied later does not).
    asked = source.requests_for(event.actor.email, match.model)
    if not asked:
        return
    weights = policy.weights
    active = next((f for f in asked if f.active_at(moment)), None)
    if active is not None:
        add(Reason(GRANTED, weights.get(GRANTED, 0.0), _granted(active)))
        return
    # The latest thing that happened before the event: a grant that ended, or a denial.
    ended = [(f.end, f) for f in asked if f.state in _WAS_GRANTED and f.granted_at is not None
             and f.end <= moment]
    denied = [(f.decided_at or f.created_at, f) for f in asked
              if f.state is RequestState.DENIED and (f.decided_at or f.created_at) <= moment]
    latest = max([*ended, *denied], key=lambda pair: pair[0], default=None)
    if latest is None:
        return  # pending, or approved and not granted yet: no standing either way
    at, fact = latest
    if fact.state is RequestState.DENIED:
        add(Reason(DENIED, weights.get(DENIED, 0.0),
                   f"exported after access request {fact.request_id} for {_what(fact)} was "
                   f"denied ({_clock(at)})"))
    else:
        how = "revoked" if fact.state is RequestState.REVOKED and (
            fact.expires_at is None or at < fact.expires_at) else "expired"
        add(Reason(EXPIRED, weights.get(EXPIRED, 0.0),
                   f"exported after access request {fact.request_id}'s grant for "
                   f"{_what(fact)} {how} ({_clock(at)})"))


def _granted(fact: AccessFact) -> str:
    why = " ".join(fact.justification.split())
    if len(why) > JUSTIFICATION_SHOWN:
        why = why[:JUSTIFICATION_SHOWN - 1].rstrip() + "…"
    until = f" until {_clock(fact.expires_at)}" if fact.expires_at is not None else ""
    return f"holds access request {fact.request_id} for {_what(fact)}{until}: \"{why}\""


def _what(fact: AccessFact) -> str:
    return fact.model + (f" v{fact.version}" if fact.version else "")


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return "unknown time"
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()
