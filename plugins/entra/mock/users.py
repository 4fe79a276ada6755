"""Users in the Entra mock: get (by id or UPN, also in key form), list, update
(accountEnabled and friends, refused for what on-premises AD owns), revokeSignInSessions."""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import (
    ENABLE_DISABLE,
    ON_PREM_MASTERED,
    READ_USERS,
    REVOKE,
    USER_DEFAULT,
    USER_FILTERABLE,
    USER_PROPERTIES,
    EntraMockBase,
    now_iso,
    requires,
)


class UserRoutes(EntraMockBase):
    """`/v1.0/users/...`."""

    @route("GET", "/v1.0/users/{key}")
    @route("GET", "/v1.0/users({key})")
    @requires(*READ_USERS)
    def get_user(self, request: Request, key: str) -> Any:
        user = self._user(key if "(" not in request.path else f"({key})")
        if isinstance(user, Response):
            return user
        selected = self.select(request, user, USER_PROPERTIES, USER_DEFAULT, "user")
        if isinstance(selected, Response):
            return selected
        return {"@odata.context": f"{self.base_url}/v1.0/$metadata#users/$entity", **selected}

    @route("GET", "/v1.0/users")
    @requires(*READ_USERS)
    def list_users(self, request: Request) -> Any:
        return self.collection(request, list(self.users.values()), "users", USER_PROPERTIES,
                               USER_DEFAULT, USER_FILTERABLE, "user")

    @route("PATCH", "/v1.0/users/{key}")
    @route("PATCH", "/v1.0/users({key})")
    def update_user(self, request: Request, key: str) -> Any:
        body = request.get_json(silent=True)
        only_enabled = isinstance(body, dict) and set(body) == {"accountEnabled"}
        denied = self.authorize(request, ENABLE_DISABLE if only_enabled else
                                ("User.ReadWrite.All", "Directory.ReadWrite.All"))
        if denied is not None:
            return denied
        if not isinstance(body, dict) or not body:
            return self.graph_error(400, "BadRequest", "Empty Payload. JSON content expected.")
        user = self._user(key if "(" not in request.path else f"({key})")
        if isinstance(user, Response):
            return user
        for name, value in body.items():
            if name not in USER_PROPERTIES or name in ("id", "signInSessionsValidFromDateTime"):
                return self.graph_error(400, "Request_BadRequest",
                                        f"Invalid property '{name}'.")
            if name == "accountEnabled" and not isinstance(value, bool):
                return self.graph_error(400, "Request_BadRequest",
                                        "Invalid value specified for property 'accountEnabled' "
                                        "of resource 'User'.")
        if user.get("onPremisesSyncEnabled") and "accountEnabled" in body:
            return self.graph_error(400, "Request_BadRequest", ON_PREM_MASTERED)
        user.update(body)
        return Response(status=204)

    @route("POST", "/v1.0/users/{key}/revokeSignInSessions")
    @requires(*REVOKE)
    def revoke_sessions(self, request: Request, key: str) -> Any:
        user = self._user(key)
        if isinstance(user, Response):
            return user
        user["signInSessionsValidFromDateTime"] = now_iso()
        self.refresh_tokens[user["id"]] = 0
        return {"@odata.context": f"{self.base_url}/v1.0/$metadata#Edm.Boolean", "value": True}
