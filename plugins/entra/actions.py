"""The Entra ID actions over Microsoft Graph: look up a user, revoke their sign-in sessions,
disable or enable the account, change group memberships. Each reads the state first or reads
Graph's answer, so a repeat reports `changed: false` instead of failing."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    VENDOR_RETRY,
    ActionContext,
    BadResponse,
    ConflictError,
    NotFoundError,
    action,
)

from .client import EntraClient, reason, unmanaged_group_reason, user_path
from .schemas import (
    ACCOUNT_OUTPUT,
    MEMBERSHIP_INPUT,
    MEMBERSHIP_OUTPUT,
    REVOKE_OUTPUT,
    USER_INPUT,
    USER_OUTPUT,
)

ALREADY_MEMBER = "already exist"  # Graph: "One or more added object references already exist"


@action("entra.get_user", connection="entra", retry=VENDOR_RETRY,
        input_schema=USER_INPUT, output_schema=USER_OUTPUT)
def get_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Look up an Entra ID user by object id, userPrincipalName or primary e-mail.

    Reads `GET /v1.0/users/{id|upn}?$select=...`, falling back to `$filter=mail eq '...'`
    (every result page followed) for an address that is not the UPN. The output includes
    `account_enabled`, `on_premises_sync_enabled` and when sessions were last revoked. Needs
    the Graph application permission User.Read.All.
    """
    user = ctx.client(EntraClient).find_user(inputs["user"], "get user")
    return {"id": str(user["id"]), "user_principal_name": str(user.get("userPrincipalName", "")),
            "mail": user.get("mail"), "display_name": user.get("displayName"),
            "account_enabled": user.get("accountEnabled"), "user_type": user.get("userType"),
            "on_premises_sync_enabled": user.get("onPremisesSyncEnabled"),
            "sign_in_sessions_valid_from": user.get("signInSessionsValidFromDateTime")}


@action("entra.revoke_sessions", connection="entra", side_effect=True, undo=None,
        retry=VENDOR_RETRY, input_schema=USER_INPUT, output_schema=REVOKE_OUTPUT)
def revoke_sessions(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Revoke all of a user's Entra ID sign-in sessions and refresh tokens.

    Calls `POST /v1.0/users/{id}/revokeSignInSessions`, which moves the user's
    signInSessionsValidFromDateTime to now; access tokens already issued stay valid until
    they expire (about an hour). Revocation is a point in time, so every call revokes again
    and reports `changed: true`; a repeat never fails. No undo. Needs User.RevokeSessions.All.
    """
    client = ctx.client(EntraClient)
    operation = "revoke sign-in sessions"
    user = client.find_user(inputs["user"], operation)
    answer = client.graph_json("POST", f"{user_path(str(user['id']))}/revokeSignInSessions",
                               operation=operation, permission="User.RevokeSessions.All")
    # Graph answers 200 {"value": true}; only an explicit false is a refusal.
    if isinstance(answer, dict) and answer.get("value") is False:
        raise BadResponse("Graph answered value: false (the sessions were not revoked)",
                          vendor="entra", operation=operation)
    return {"user_id": str(user["id"]),
            "user_principal_name": str(user.get("userPrincipalName", "")), "changed": True}


def _set_account_enabled(ctx: ActionContext, inputs: dict[str, Any],
                         enabled: bool) -> dict[str, Any]:
    client = ctx.client(EntraClient)
    operation = "enable user" if enabled else "disable user"
    user = client.find_user(inputs["user"], operation)
    result = {"user_id": str(user["id"]),
              "user_principal_name": str(user.get("userPrincipalName", "")),
              "account_enabled": enabled}
    if user.get("accountEnabled") is enabled:
        return {**result, "changed": False}
    try:
        client.graph("PATCH", user_path(str(user["id"])), operation=operation,
                     permission="User.EnableDisableAccount.All",
                     json_body={"accountEnabled": enabled})
    except ConflictError as exc:
        if not user.get("onPremisesSyncEnabled"):
            raise
        raise ConflictError(f"{reason(exc)} (the account is synchronised from on-premises "
                            "Active Directory: change it there; revoking sessions still works)",
                            vendor="entra", operation=operation, status=exc.status,
                            request_id=exc.request_id) from None
    return {**result, "changed": True}


@action("entra.disable_user", connection="entra", side_effect=True, undo="entra.enable_user",
        retry=VENDOR_RETRY, input_schema=USER_INPUT, output_schema=ACCOUNT_OUTPUT)
def disable_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Block an Entra ID user from signing in (accountEnabled = false).

    Sends `PATCH /v1.0/users/{id}` with `{"accountEnabled": false}` only when the account is
    enabled; a disabled account is reported with `changed: false`. Accounts synchronised from
    on-premises AD must be disabled there. Combine with entra.revoke_sessions to end existing
    sessions. Undo with entra.enable_user. Needs User.EnableDisableAccount.All and
    User.Read.All (or User.ReadWrite.All).
    """
    return _set_account_enabled(ctx, inputs, False)


@action("entra.enable_user", connection="entra", side_effect=True, undo="entra.disable_user",
        retry=VENDOR_RETRY, input_schema=USER_INPUT, output_schema=ACCOUNT_OUTPUT)
def enable_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Allow a disabled Entra ID user to sign in again (accountEnabled = true).

    Sends `PATCH /v1.0/users/{id}` with `{"accountEnabled": true}` only when the account is
    disabled; an enabled account is reported with `changed: false`. Undo with
    entra.disable_user. Needs User.EnableDisableAccount.All and User.Read.All (or
    User.ReadWrite.All).
    """
    return _set_account_enabled(ctx, inputs, True)


def _change_membership(ctx: ActionContext, inputs: dict[str, Any], *, add: bool) -> dict[str, Any]:
    client = ctx.client(EntraClient)
    operation = "add group member" if add else "remove group member"
    user = client.find_user(inputs["user"], operation)
    group = client.find_group(inputs["group"], operation)
    user_id, group_id = str(user["id"]), str(group["id"])
    result = {"user_id": user_id, "user_principal_name": str(user.get("userPrincipalName", "")),
              "group_id": group_id, "group_name": str(group.get("displayName", "")),
              "member": add}
    try:
        if add:
            client.graph("POST", f"/groups/{group_id}/members/$ref", operation=operation,
                         permission="GroupMember.ReadWrite.All",
                         json_body={"@odata.id": client.directory_object_url(user_id)})
        else:
            client.graph("DELETE", f"/groups/{group_id}/members/{user_id}/$ref",
                         operation=operation, permission="GroupMember.ReadWrite.All")
    except NotFoundError:
        if add:
            raise
        # User and group were both just read: the missing object is the membership.
        return {**result, "changed": False}
    except ConflictError as exc:
        if add and ALREADY_MEMBER in str(exc):
            return {**result, "changed": False}
        why = unmanaged_group_reason(group)
        if why is None:
            raise
        raise ConflictError(f"{reason(exc)} (Graph cannot change this group's members: "
                            f"{why})", vendor="entra", operation=operation,
                            status=exc.status, request_id=exc.request_id) from None
    return {**result, "changed": True}


@action("entra.remove_group_member", connection="entra", side_effect=True,
        undo="entra.add_group_member", retry=VENDOR_RETRY, input_schema=MEMBERSHIP_INPUT,
        output_schema=MEMBERSHIP_OUTPUT)
def remove_group_member(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Remove a user from an Entra ID group (by group object id or exact displayName).

    Sends `DELETE /v1.0/groups/{group}/members/{user}/$ref`; Graph's 404 for a user who is
    not a direct member is reported as `changed: false`. Dynamic, on-premises-synchronised
    and mail-enabled groups cannot be changed through Graph and fail with the reason. Undo
    with entra.add_group_member. Needs GroupMember.ReadWrite.All.
    """
    return _change_membership(ctx, inputs, add=False)


@action("entra.add_group_member", connection="entra", side_effect=True,
        undo="entra.remove_group_member", retry=VENDOR_RETRY, input_schema=MEMBERSHIP_INPUT,
        output_schema=MEMBERSHIP_OUTPUT)
def add_group_member(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Add a user to an Entra ID group (by group object id or exact displayName).

    Sends `POST /v1.0/groups/{group}/members/$ref` with the user's directoryObjects
    `@odata.id`; Graph's 400 "added object references already exist" for an existing member
    is reported as `changed: false`. Undo with entra.remove_group_member. Needs
    GroupMember.ReadWrite.All.
    """
    return _change_membership(ctx, inputs, add=True)


ACTIONS = (get_user, revoke_sessions, disable_user, enable_user, remove_group_member,
           add_group_member)
