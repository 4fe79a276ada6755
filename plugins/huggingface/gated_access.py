"""Gated-repo access requests on the Hub: list them, accept one, reject (or revoke) one.

The Hub keeps one request per user and repo, in one of three lists (`pending`, `accepted`,
`rejected`); `POST .../user-access-request/handle` moves it between them, and rejecting an
accepted user takes their access away. A user with no request at all is granted with
`.../user-access-request/grant` (400 when they have access already). Each answer is read back
from the lists first, so a repeat reports `changed: false` and a user who was accepted before
is reported `pre_existing` and left as they are.
"""

from __future__ import annotations

from typing import Any

from .client import HubClient

STATUSES = ("pending", "accepted", "rejected")


def access_request(item: dict[str, Any]) -> dict[str, Any]:
    """One request as the Hub lists it (`user.user`, `user.email`, the gate form's `fields`)."""
    found = item.get("user")
    user: dict[str, Any] = found if isinstance(found, dict) else {}
    fields = item.get("fields")
    return {"user": str(user.get("user") or ""), "fullname": user.get("fullname"),
            "email": user.get("email"), "status": item.get("status"),
            "timestamp": item.get("timestamp"),
            "fields": {str(k): v for k, v in fields.items()} if isinstance(fields, dict) else {}}


def list_requests(client: HubClient, repo_type: str, repo_id: str,
                  status: str) -> list[dict[str, Any]]:
    return [access_request(item) for item in client.access_requests(
        repo_type, repo_id, status, f"list {status} access requests")
        if isinstance(item.get("user"), dict)]


def status_of(client: HubClient, repo_type: str, repo_id: str, user: str) -> str | None:
    """Which list holds the user's request (None: they never asked)."""
    for status in ("accepted", "pending", "rejected"):
        if any(r["user"] == user for r in list_requests(client, repo_type, repo_id, status)):
            return status
    return None


def accept(client: HubClient, repo_type: str, repo_id: str, user: str) -> dict[str, Any]:
    before = status_of(client, repo_type, repo_id, user)
    if before != "accepted":
        if before is None:
            client.grant_access(repo_type, repo_id, user, "grant access")
        else:
            client.handle_access(repo_type, repo_id, user, "accepted", "accept access request")
    return {"repo_id": repo_id, "repo_type": repo_type, "user": user, "status": "accepted",
            "previous_status": before, "changed": before != "accepted",
            "pre_existing": "accepted" if before == "accepted" else None}


def reject(client: HubClient, repo_type: str, repo_id: str, user: str,
           reason: str | None) -> dict[str, Any]:
    before = status_of(client, repo_type, repo_id, user)
    if before in ("pending", "accepted"):
        client.handle_access(repo_type, repo_id, user, "rejected", "reject access request",
                             reason)
    return {"repo_id": repo_id, "repo_type": repo_type, "user": user,
            "status": "rejected" if before else None, "previous_status": before,
            "changed": before in ("pending", "accepted"), "revoked": before == "accepted"}
