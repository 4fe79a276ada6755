"""The Okta actions: look up, suspend and unsuspend a user, clear their sessions and tokens,
and change their group memberships. Thin: resolve the user, read the state, change it only
when it is not already what was asked."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, ConflictError, action

from .client import MANAGED_GROUP_TYPE, OktaClient, reason
from .schemas import (
    CLEAR_SESSIONS_INPUT,
    CLEAR_SESSIONS_OUTPUT,
    LIFECYCLE_OUTPUT,
    MEMBERSHIP_INPUT,
    MEMBERSHIP_OUTPUT,
    USER_INPUT,
    USER_OUTPUT,
)

# Statuses in which a user cannot sign in, so suspending is already achieved.
CANNOT_SIGN_IN = ("SUSPENDED", "DEPROVISIONED")


def summarize_user(user: dict[str, Any]) -> dict[str, Any]:
    profile = user.get("profile") or {}
    return {
        "id": str(user.get("id")),
        "login": str(profile.get("login") or ""),
        "email": profile.get("email"),
        "status": str(user.get("status") or ""),
        "first_name": profile.get("firstName"),
        "last_name": profile.get("lastName"),
        "last_login": user.get("lastLogin"),
        "status_changed": user.get("statusChanged"),
        "profile": profile,
    }


def _lifecycle_result(user: dict[str, Any], status: str, previous: str,
                      changed: bool) -> dict[str, Any]:
    return {"user_id": str(user["id"]), "login": str((user.get("profile") or {}).get("login", "")),
            "status": status, "previous_status": previous, "changed": changed}


@action("okta.get_user", connection="okta", retry=VENDOR_RETRY,
        input_schema=USER_INPUT, output_schema=USER_OUTPUT)
def get_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Look up an Okta user by id, login or primary e-mail.

    Fetches `GET /api/v1/users/{id-or-login}`; an e-mail that is not the login is searched
    with `profile.email eq` (every result page followed; a deprovisioned duplicate loses to
    the live account). The output is the user's id, login, e-mail, status and profile. Needs
    `okta.users.read` (any read-only admin's API token).
    """
    client = ctx.client(OktaClient)
    return summarize_user(client.find_user(inputs["user"], "get user"))


@action("okta.suspend_user", connection="okta", side_effect=True, undo="okta.unsuspend_user",
        retry=VENDOR_RETRY, input_schema=USER_INPUT, output_schema=LIFECYCLE_OUTPUT)
def suspend_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Suspend an Okta user so they cannot sign in; groups and app assignments are kept.

    Sends `POST /api/v1/users/{id}/lifecycle/suspend`. A user already SUSPENDED (or
    DEPROVISIONED, who cannot sign in either) is left alone and reported with
    `changed: false`; Okta suspends only ACTIVE users and its refusal for other statuses is
    reported as a conflict. Undo with okta.unsuspend_user. Needs `okta.users.manage`.
    """
    client = ctx.client(OktaClient)
    operation = "suspend user"
    user = client.find_user(inputs["user"], operation)
    previous = str(user.get("status"))
    if previous in CANNOT_SIGN_IN:
        return _lifecycle_result(user, previous, previous, False)
    try:
        client.lifecycle(str(user["id"]), "suspend", operation)
    except ConflictError as exc:
        # A retried step may find its first attempt's suspension already done.
        now = str(client.find_user(str(user["id"]), operation).get("status"))
        if now in CANNOT_SIGN_IN:
            return _lifecycle_result(user, now, previous, False)
        raise ConflictError(f"{reason(exc)} (the user is {now}; Okta suspends "
                            "only ACTIVE users: deactivate or clear sessions instead)",
                            vendor=exc.vendor, operation=operation, status=exc.status,
                            request_id=exc.request_id) from None
    return _lifecycle_result(user, "SUSPENDED", previous, True)


@action("okta.unsuspend_user", connection="okta", side_effect=True, undo="okta.suspend_user",
        retry=VENDOR_RETRY, input_schema=USER_INPUT, output_schema=LIFECYCLE_OUTPUT)
def unsuspend_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Unsuspend a suspended Okta user, returning them to ACTIVE.

    Sends `POST /api/v1/users/{id}/lifecycle/unsuspend` only when the user is SUSPENDED; a
    user in any other status is not suspended and is reported with `changed: false`. Undo with
    okta.suspend_user. Needs `okta.users.manage`.
    """
    client = ctx.client(OktaClient)
    operation = "unsuspend user"
    user = client.find_user(inputs["user"], operation)
    previous = str(user.get("status"))
    if previous != "SUSPENDED":
        return _lifecycle_result(user, previous, previous, False)
    try:
        client.lifecycle(str(user["id"]), "unsuspend", operation)
    except ConflictError:
        now = str(client.find_user(str(user["id"]), operation).get("status"))
        if now != "SUSPENDED":
            return _lifecycle_result(user, now, previous, False)
        raise
    return _lifecycle_result(user, "ACTIVE", previous, True)


@action("okta.clear_sessions", connection="okta", side_effect=True, undo=None,
        retry=VENDOR_RETRY, input_schema=CLEAR_SESSIONS_INPUT,
        output_schema=CLEAR_SESSIONS_OUTPUT)
def clear_sessions(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """End all of a user's Okta sessions and revoke their OAuth access and refresh tokens.

    Sends `DELETE /api/v1/users/{id}/sessions?oauthTokens=true&forgetDevices=true` (both
    flags can be turned off). The revocation is a point in time, not a state: Okta does not
    say whether anything was open, so every call revokes again and reports `changed: true`;
    a repeat never fails. Sessions of apps that keep their own cookies are not ended by Okta.
    No undo. Needs `okta.users.manage`.
    """
    client = ctx.client(OktaClient)
    operation = "clear user sessions"
    user = client.find_user(inputs["user"], operation)
    oauth_tokens = bool(inputs.get("oauth_tokens", True))
    forget_devices = bool(inputs.get("forget_devices", True))
    client.revoke_sessions(str(user["id"]), oauth_tokens=oauth_tokens,
                           forget_devices=forget_devices, operation=operation)
    return {"user_id": str(user["id"]), "login": str(user.get("profile", {}).get("login", "")),
            "oauth_tokens_revoked": oauth_tokens, "devices_forgotten": forget_devices,
            "changed": True}


def _change_membership(ctx: ActionContext, inputs: dict[str, Any], *, add: bool) -> dict[str, Any]:
    client = ctx.client(OktaClient)
    operation = "add user to group" if add else "remove user from group"
    user = client.find_user(inputs["user"], operation)
    group = client.find_group(inputs["group"], operation)
    user_id, group_id = str(user["id"]), str(group["id"])
    group_name = str((group.get("profile") or {}).get("name", ""))
    group_type = group.get("type")
    result = {"user_id": user_id, "login": str(user.get("profile", {}).get("login", "")),
              "group_id": group_id, "group_name": group_name, "group_type": group_type}
    member = group_id in client.user_group_ids(user_id, operation)
    if member == add:
        return {**result, "member": member, "changed": False}
    if group_type and group_type != MANAGED_GROUP_TYPE:
        raise ConflictError(f"group '{group_name}' is {group_type}: its memberships are managed "
                            "by its source (directory or app), not in Okta", vendor="okta",
                            operation=operation)
    client.set_membership("PUT" if add else "DELETE", group_id, user_id, operation)
    return {**result, "member": add, "changed": True}


@action("okta.remove_from_group", connection="okta", side_effect=True,
        undo="okta.add_to_group", retry=VENDOR_RETRY, input_schema=MEMBERSHIP_INPUT,
        output_schema=MEMBERSHIP_OUTPUT)
def remove_from_group(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Remove a user from an Okta group (by group id or exact name).

    Reads the user's groups and sends `DELETE /api/v1/groups/{groupId}/users/{userId}` only
    when they are a member; a user who is not is reported with `changed: false`. Only
    OKTA_GROUP memberships can change in Okta (APP_GROUP ones belong to the directory they
    come from). Undo with okta.add_to_group. Needs `okta.groups.manage`.
    """
    return _change_membership(ctx, inputs, add=False)


@action("okta.add_to_group", connection="okta", side_effect=True,
        undo="okta.remove_from_group", retry=VENDOR_RETRY, input_schema=MEMBERSHIP_INPUT,
        output_schema=MEMBERSHIP_OUTPUT)
def add_to_group(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Add a user to an Okta group (by group id or exact name).

    Reads the user's groups and sends `PUT /api/v1/groups/{groupId}/users/{userId}` only when
    they are not yet a member; an existing member is reported with `changed: false`. Only
    OKTA_GROUP memberships can change in Okta. Undo with okta.remove_from_group. Needs
    `okta.groups.manage`.
    """
    return _change_membership(ctx, inputs, add=True)


ACTIONS = (get_user, suspend_user, unsuspend_user, clear_sessions, remove_from_group,
           add_to_group)
