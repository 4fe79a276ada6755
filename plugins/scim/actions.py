"""The SCIM actions: look up a user, deactivate and reactivate them through RFC 7644 PATCH.
They work against any SCIM 2.0 service provider (Okta, Entra provisioning targets, SaaS apps
such as model registries and notebooks that expose SCIM)."""

from __future__ import annotations

from typing import Any

from crownguard.engine import (
    VENDOR_RETRY,
    Action,
    ActionContext,
    BadResponse,
    ConflictError,
    action,
)

from .client import ScimClient, is_stale
from .schemas import ACTIVE_OUTPUT, USER_INPUT, USER_OUTPUT


@action("scim.get_user", connection="scim", retry=VENDOR_RETRY, input_schema=USER_INPUT,
        output_schema=USER_OUTPUT)
def get_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Look up a SCIM user by id, userName or e-mail address.

    Reads `GET {base}/Users/{id}`, else `GET {base}/Users?filter=userName eq "..."` and, for an
    address, `emails.value eq "..."` (all result pages followed). The output includes
    `active`. `connection` picks one of several SCIM services (default `scim`). Needs a token
    that may read Users.
    """
    user, _ = _client(ctx, inputs).find_user(inputs["user"], "get user")
    emails = [str(e.get("value")) for e in user.get("emails") or []
              if isinstance(e, dict) and e.get("value")]
    return {"id": str(user["id"]), "user_name": str(user.get("userName", "")),
            "active": user.get("active"), "display_name": user.get("displayName"),
            "external_id": user.get("externalId"), "emails": emails}


def _client(ctx: ActionContext, inputs: dict[str, Any]) -> ScimClient:
    """A client for the named SCIM connection: one playbook can reach several services."""
    return ctx.client(ScimClient, str(inputs.get("connection") or "scim"))


def _set_active(ctx: ActionContext, inputs: dict[str, Any], active: bool) -> dict[str, Any]:
    client = _client(ctx, inputs)
    operation = "activate user" if active else "deactivate user"
    user, version = client.find_user(inputs["user"], operation)
    user_id = str(user["id"])
    result = {"user_id": user_id, "user_name": str(user.get("userName", "")), "active": active}
    for _ in range(2):  # one more try when someone else changed the user in between (412)
        if user.get("active") is active:
            return {**result, "changed": False}
        try:
            answer = client.set_active(user_id, active, version, operation)
        except ConflictError as exc:
            if not is_stale(exc):
                raise
            user, version = client.get_user(user_id, operation)
            continue
        if answer is not None and "active" in answer and answer["active"] is not active:
            raise BadResponse(f"the service accepted the PATCH but the user's active is still "
                              f"{answer['active']} (set patch_style: value if it ignores `path`)",
                              vendor="scim", operation=operation, status=200)
        return {**result, "changed": True}
    raise ConflictError("the user kept changing on the service (412 twice); try again",
                        vendor="scim", operation=operation, status=412)


@action("scim.deactivate_user", connection="scim", side_effect=True,
        undo="scim.activate_user", retry=VENDOR_RETRY, input_schema=USER_INPUT,
        output_schema=ACTIVE_OUTPUT)
def deactivate_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Deactivate a user at a SCIM 2.0 service (active = false), keeping the account.

    Sends RFC 7644 `PATCH {base}/Users/{id}` with a PatchOp replacing `active` (with `path`,
    or as a value object when the connection sets `patch_style: value`), guarded by If-Match
    when the service versions resources. An inactive user is reported with `changed: false`.
    `connection` picks the service (default `scim`). Undo with scim.activate_user. Needs a
    token that may write Users.
    """
    return _set_active(ctx, inputs, False)


@action("scim.activate_user", connection="scim", side_effect=True,
        undo="scim.deactivate_user", retry=VENDOR_RETRY, input_schema=USER_INPUT,
        output_schema=ACTIVE_OUTPUT)
def activate_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Reactivate a user at a SCIM 2.0 service (active = true).

    Sends the same RFC 7644 PATCH as scim.deactivate_user with `active: true`; an active user
    is reported with `changed: false`. Undo with scim.deactivate_user. Needs a token that may
    write Users.
    """
    return _set_active(ctx, inputs, True)


ACTIONS: tuple[Action, ...] = (get_user, deactivate_user, activate_user)
