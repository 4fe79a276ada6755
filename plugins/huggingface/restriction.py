"""Restricting a Hub repo (private, gated, a user's access rejected) and lifting it again.

The Hub keeps no record of earlier settings, so the state before the restriction is part of
restrict_repo's output (`previous`) and unrestrict_repo takes it back as input. A retried
attempt must not report its own earlier work as that state: the first attempt's reading is kept
per step (by idempotency key) on the connection for the life of the process. A run resumed in
another process after a crash mid-step reads the repo again; that is written in the output as
`previous_source: "read"` rather than `"first_attempt"`.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from crownguard.engine import ActionContext, Connection

from .client import HubClient

_FIRST_READINGS: weakref.WeakKeyDictionary[Connection, dict[str, dict[str, Any]]] = (
    weakref.WeakKeyDictionary())
_LOCK = threading.Lock()


def gated_value(info: dict[str, Any]) -> str | bool:
    gated = info.get("gated", False)
    return gated if gated in ("auto", "manual") else False


def _first_reading(ctx: ActionContext, reading: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The state the step's first attempt saw (kept), or this reading if this is the first."""
    connection = ctx.connection(HubClient.connection_type)
    with _LOCK:
        readings = _FIRST_READINGS.setdefault(connection, {})
        if ctx.idempotency_key in readings:
            return readings[ctx.idempotency_key], "first_attempt"
        readings[ctx.idempotency_key] = reading
        return reading, "first_attempt" if ctx.attempt == 1 else "read"


def _forget(ctx: ActionContext) -> None:
    with _LOCK:
        _FIRST_READINGS.get(ctx.connection(HubClient.connection_type), {}).pop(
            ctx.idempotency_key, None)


def summarize(info: dict[str, Any], repo_type: str) -> dict[str, Any]:
    return {"repo_id": str(info["id"]), "repo_type": repo_type,
            "private": bool(info.get("private")), "gated": gated_value(info),
            "disabled": bool(info.get("disabled")), "sha": info.get("sha"),
            "author": info.get("author"), "last_modified": info.get("lastModified"),
            "downloads": info.get("downloads"), "likes": info.get("likes"),
            "files": sorted(str(s.get("rfilename")) for s in info.get("siblings") or []
                            if isinstance(s, dict) and s.get("rfilename"))}


def restrict(ctx: ActionContext, client: HubClient, *, repo_type: str, repo_id: str,
             private: bool, gated: str | bool, user: str | None,
             reason: str | None) -> dict[str, Any]:
    info = client.repo_info(repo_type, repo_id, "get repo")
    now = {"private": bool(info.get("private")), "gated": gated_value(info)}
    user_access = None
    if user:
        accepted = bool(now["gated"]) and client.has_accepted(repo_type, repo_id, user,
                                                              "list accepted access requests")
        user_access = {"user": user, "status": "accepted" if accepted else "not_accepted"}
    previous, source = _first_reading(ctx, {**now, "user_access": user_access})

    settings: dict[str, Any] = {}
    if private and not now["private"]:
        settings["visibility"] = "private"
    if gated and now["gated"] != gated:
        settings["gated"] = gated
    if settings:
        client.update_settings(repo_type, repo_id, settings, "update repo settings")
    if user and user_access and user_access["status"] == "accepted":
        client.handle_access(repo_type, repo_id, user, "rejected", "reject access request",
                             reason)
    _forget(ctx)  # done: no retry will need the first reading again
    final = {"private": bool(private or now["private"]), "gated": gated or now["gated"]}
    # Measured from the first attempt's reading: what this step changed, over all attempts.
    was_accepted = (previous.get("user_access") or {}).get("status") == "accepted"
    changed = (previous["private"], previous["gated"]) != (final["private"], final["gated"])
    return {"repo_id": repo_id, "repo_type": repo_type, "changed": changed or was_accepted,
            **final, "user_rejected": was_accepted, "previous": previous,
            "previous_source": source}


def unrestrict(client: HubClient, *, repo_type: str, repo_id: str, private: bool,
               gated: str | bool, accept_users: list[str]) -> dict[str, Any]:
    info = client.repo_info(repo_type, repo_id, "get repo")
    now = {"private": bool(info.get("private")), "gated": gated_value(info)}
    settings: dict[str, Any] = {}
    if now["private"] != private:
        settings["visibility"] = "private" if private else "public"
    if now["gated"] != gated:
        settings["gated"] = gated
    if settings:
        client.update_settings(repo_type, repo_id, settings, "update repo settings")
    accepted: list[str] = []
    # Access requests exist only on gated repos; on an open repo everyone may read again.
    for user in accept_users if gated else []:
        if not client.has_accepted(repo_type, repo_id, user, "list accepted access requests"):
            client.handle_access(repo_type, repo_id, user, "accepted", "accept access request")
            accepted.append(user)
    return {"repo_id": repo_id, "repo_type": repo_type, "changed": bool(settings or accepted),
            "private": private, "gated": gated, "users_accepted": accepted}
