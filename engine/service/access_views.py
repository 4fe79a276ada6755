"""What a requester is shown of an access request: the state, the times and the policy's words
for the answer, never the risk reasons behind it (a watchlist, a departure date that HR knows
of). One place for the service's answers to a requester, their Slack messages and the demo."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .access_store import AccessRequest, AccessState, parse_time

# The fields of a request a requester sees of their own (no decision, approvals, approvers).
REQUESTER_FIELDS = ("id", "requester", "model", "version", "alias", "access", "justification",
                    "duration_seconds", "state", "created_at", "updated_at", "decided_at",
                    "granted_at", "expires_at", "revoked_at")


def told(request: AccessRequest) -> str:
    """What the requester is told: the outcome in the policy's words."""
    model = request.model
    if request.state == AccessState.GRANTED:
        until = f" until {clock(request.expires_at)}" if request.expires_at else ""
        return f"granted: {request.access} access to {model}{until}"
    if request.state == AccessState.APPROVED:  # the registry has not taken the grant yet
        return f"approved: {request.access} access to {model} is being granted"
    if request.state == AccessState.DENIED and (request.decision or {}).get(
            "outcome") == "not_needed":
        return (f"not needed: {model} is not a model the access policy manages; its "
                "registry's own permissions apply")
    if request.state == AccessState.DENIED:
        return (f"refused: the access policy does not allow this request for "
                f"{model}; an admin can review request {request.id}")
    if request.state == AccessState.EXPIRED:
        return f"expired: your {request.access} access to {model} ended at " \
               f"{clock(request.expires_at or request.revoked_at)}"
    if request.state == AccessState.REVOKED:
        if request.granted_at is None:
            return f"withdrawn: request {request.id} for {model} was closed before a grant"
        return f"revoked: your {request.access} access to {model} was taken back at " \
               f"{clock(request.revoked_at)}"
    return f"{request.state}: waiting for an approver of {model}"


def requester_view(request: AccessRequest) -> dict[str, Any]:
    """The request as its requester sees it: REQUESTER_FIELDS and `answer` (told())."""
    full = request.to_dict()
    return {**{key: full[key] for key in REQUESTER_FIELDS}, "answer": told(request)}


def requester_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The request's changes without their payloads (those carry the decision's reasons)."""
    return [{"type": h["type"], "at": h["at"]} for h in history]


def clock(moment: datetime | str | None) -> str:
    """A time as people read it, in UTC."""
    if moment is None:
        return "-"
    at = parse_time(moment) if isinstance(moment, str) else moment
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
