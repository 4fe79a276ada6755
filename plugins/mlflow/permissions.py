"""A user's permission on a registered model, through whichever auth API the server has.

MLflow's basic-auth app changed its permission API:

- up to 3.16 ("legacy"): one row per (model, user) at
  `/api/2.0/mlflow/registered-models/permissions/{get,create,update,delete}`; a row with
  `NO_PERMISSIONS` takes access away, a missing row means the server's default permission.
- 3.17 and later ("v3"): grants on a per-user role at
  `/api/3.0/mlflow/users/permissions/{list,get,grant,revoke}`; `NO_PERMISSIONS` can no longer be
  granted, an explicit `DENY` vetoes every other grant the user holds.

Without the auth app neither exists and the server answers Flask's HTML 404 (Databricks:
ENDPOINT_NOT_FOUND); with it, an unknown user is MLflow's JSON 404. Admins bypass permissions
on both: the caller sees `is_admin` and can decide what else to do about such a user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crownguard.engine import BadResponse, NotFoundError

from .client import REGISTRY, MlflowRegistryClient, route_missing

USERS_V3 = "api/3.0/mlflow/users/permissions"
MODEL_PERMISSIONS = f"{REGISTRY}/registered-models/permissions"
RESOURCE_TYPE = "registered_model"


@dataclass(frozen=True)
class AccessState:
    """What one user may do with one model, as far as their own grant goes."""

    api: str
    user: str
    is_admin: bool
    explicit: str | None  # their own grant; None: none, the server's default applies
    effective: str | None  # what the server resolves (v3 only; None when unknown)


class AuthApi:
    """One generation of the auth app's permission endpoints."""

    name: ClassVar[str]
    block: ClassVar[str]  # the permission that takes access away

    def __init__(self, client: MlflowRegistryClient, user: dict[str, Any], operation: str):
        self.client = client
        self.user = user
        self.operation = operation

    @property
    def is_admin(self) -> bool:
        return bool(self.user.get("is_admin"))

    def state(self, model: str, username: str) -> AccessState:
        raise NotImplementedError

    def change(self, model: str, username: str, current: str | None,
               target: str | None) -> None:
        """Make the user's own grant `target` (None: remove it) when it is `current`."""
        raise NotImplementedError


class V3AuthApi(AuthApi):
    name = "v3"
    block = "DENY"

    def state(self, model: str, username: str) -> AccessState:
        listing = self.client.request_json("GET", f"{USERS_V3}/list", operation=self.operation,
                                           params={"username": username})
        rows = listing.get("permissions") if isinstance(listing, dict) else None
        if not isinstance(rows, list):
            raise BadResponse("the permission listing has no 'permissions' list",
                              vendor=self.client.vendor, operation=self.operation)
        # Only the user's own role can be changed with grant/revoke; roles an admin built are
        # left alone (an explicit DENY overrides them anyway).
        own_role = f"__user_{self.user.get('id')}__"
        explicit = next((str(r.get("permission")) for r in rows if isinstance(r, dict)
                         and r.get("role_name") == own_role
                         and r.get("resource_type") == RESOURCE_TYPE
                         and r.get("resource_pattern") == model), None)
        resolved = self.client.request_json(
            "GET", f"{USERS_V3}/get", operation=self.operation,
            params={"username": username, "resource_type": RESOURCE_TYPE, "resource_id": model})
        effective = resolved.get("permission") if isinstance(resolved, dict) else None
        return AccessState(self.name, username, self.is_admin, explicit,
                           None if effective is None else str(effective))

    def change(self, model: str, username: str, current: str | None,
               target: str | None) -> None:
        if current == target:
            return
        key = {"username": username, "resource_type": RESOURCE_TYPE, "resource_id": model}
        if current is not None:
            # A grant cannot be overwritten: revoke first (404 if it is already gone).
            self.client.request("POST", f"{USERS_V3}/revoke", operation=self.operation,
                                json_body=key, ok=(404,))
        if target is not None:
            self.client.request("POST", f"{USERS_V3}/grant", operation=self.operation,
                                json_body={**key, "permission": target})


class LegacyAuthApi(AuthApi):
    name = "legacy"
    block = "NO_PERMISSIONS"

    def state(self, model: str, username: str) -> AccessState:
        response = self.client.request("GET", f"{MODEL_PERMISSIONS}/get",
                                       operation=self.operation,
                                       params={"name": model, "username": username}, ok=(404,))
        explicit: str | None = None
        if response.status_code != 404:
            body = self.client.parse_json(response, self.operation)
            row = body.get("registered_model_permission") if isinstance(body, dict) else None
            if not isinstance(row, dict) or "permission" not in row:
                raise BadResponse("the answer has no registered_model_permission",
                                  vendor=self.client.vendor, operation=self.operation)
            explicit = str(row["permission"])
        return AccessState(self.name, username, self.is_admin, explicit, explicit)

    def change(self, model: str, username: str, current: str | None,
               target: str | None) -> None:
        if current == target:
            return
        key = {"name": model, "username": username}
        if target is None:
            self.client.request("DELETE", f"{MODEL_PERMISSIONS}/delete",
                                operation=self.operation, json_body=key, ok=(404,))
        elif current is None:
            self.client.request("POST", f"{MODEL_PERMISSIONS}/create", operation=self.operation,
                                json_body={**key, "permission": target})
        else:
            self.client.request("PATCH", f"{MODEL_PERMISSIONS}/update", operation=self.operation,
                                json_body={**key, "permission": target})


def auth_api(client: MlflowRegistryClient, username: str, operation: str) -> AuthApi | None:
    """The server's permission API for this user; None when the server has no auth app.

    Raises NotFoundError for a user the auth app does not know.
    """
    response = client.request("GET", f"{REGISTRY}/users/get", operation=operation,
                              params={"username": username}, ok=(404,))
    if route_missing(response):
        return None
    if response.status_code == 404:
        raise NotFoundError(f"the MLflow auth app has no user '{username}'",
                            vendor=client.vendor, operation=operation, status=404)
    body = client.parse_json(response, operation)
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        raise BadResponse("the answer has no 'user' object", vendor=client.vendor,
                          operation=operation)
    probe = client.request("GET", f"{USERS_V3}/list", operation=operation,
                           params={"username": username}, ok=(404,))
    if route_missing(probe):
        return LegacyAuthApi(client, user, operation)
    return V3AuthApi(client, user, operation)
