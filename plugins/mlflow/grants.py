"""Just-in-time access to a registered model: grant a user a permission on it, and take back
only what was granted.

Idempotent both ways. A grant finds the user's own permission first: one already there (READ,
EDIT, anything an admin gave, or a DENY) is left exactly as it is and reported as
`pre_existing`, and `changed` is false. A revoke removes the user's permission only when it is
the one granted (`permission`), so a permission someone changed since is left alone.
"""

from __future__ import annotations

from typing import Any

from crownguard.engine import ActionError

from .client import MlflowRegistryClient
from .permissions import AuthApi, auth_api

LOOKUP = "get auth user"


def _api(client: MlflowRegistryClient, username: str) -> AuthApi:
    api = auth_api(client, username, LOOKUP)
    if api is None:
        raise ActionError("mlflow: the server runs no auth app (`mlflow server --app-name "
                          "basic-auth`): there are no per-user permissions to grant")
    return api


def grant(client: MlflowRegistryClient, *, name: str, username: str, permission: str
          ) -> dict[str, Any]:
    api = _api(client, username)
    state = api.state(name, username)
    result = {"name": name, "username": username, "permission": permission, "api": api.name,
              "is_admin": api.is_admin}
    if state.explicit is not None:
        return {**result, "changed": False, "pre_existing": state.explicit}
    api.change(name, username, None, permission)
    return {**result, "changed": True, "pre_existing": None}


def revoke(client: MlflowRegistryClient, *, name: str, username: str, permission: str
           ) -> dict[str, Any]:
    api = _api(client, username)
    state = api.state(name, username)
    result = {"name": name, "username": username, "permission": permission, "api": api.name}
    if state.explicit is None:
        return {**result, "changed": False, "left": None}
    if state.explicit != permission:
        return {**result, "changed": False, "left": state.explicit}
    api.change(name, username, state.explicit, None)
    return {**result, "changed": True, "left": None}


def registered_model(client: MlflowRegistryClient, name: str) -> dict[str, Any]:
    operation = "get registered model"
    answer = client.call("GET", "registered-models/get", operation=operation,
                         params={"name": name})
    model = client.member(answer, "registered_model", operation)
    tags = {str(t["key"]): str(t.get("value", "")) for t in model.get("tags") or []
            if isinstance(t, dict) and "key" in t}
    aliases = {str(a["alias"]): str(a["version"]) for a in model.get("aliases") or []
               if isinstance(a, dict) and "alias" in a and "version" in a}
    return {"name": str(model.get("name", name)), "tags": tags, "aliases": aliases,
            "description": model.get("description") or None}
