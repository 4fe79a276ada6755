"""Users in the Okta mock: look-up by id, login or shortname, list and search, the
lifecycle (suspend, unsuspend), session revocation and a user's groups."""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import OktaMockBase, now_iso, requires
from .search import InvalidSearch


class UserRoutes(OktaMockBase):
    """`/api/v1/users/...`."""

    @route("GET", "/api/v1/users/{user_id}")
    @requires("okta.users.read")
    def get_user(self, request: Request, user_id: str) -> Any:
        found = self._user_or_404(user_id)
        return found if isinstance(found, Response) else self.render_user(found)

    @route("GET", "/api/v1/users")
    @requires("okta.users.read")
    def list_users(self, request: Request) -> Any:
        records = [self.render_user(u) for u in self.users.values()]
        try:
            if "search" in request.args or "filter" in request.args:
                records = self._filtered(request, records)
            else:
                records = [r for r in records if r["status"] != "DEPROVISIONED"]
        except InvalidSearch as exc:
            return self.error(400, "E0000031", "Invalid search criteria.", (str(exc),))
        q = (request.args.get("q") or "").lower()
        if q:
            records = [r for r in records if any(
                str(r["profile"].get(k) or "").lower().startswith(q)
                for k in ("firstName", "lastName", "email", "login"))]
        return self.page(request, records, "/api/v1/users")

    def _transition(self, user_id: str, source: str, target: str, verb: str) -> Any:
        found = self._user_or_404(user_id)
        if isinstance(found, Response):
            return found
        if found["status"] != source:
            return self.error(400, "E0000001", f"Api validation failed: {verb}",
                              (f"Cannot {verb} a user that is {found['status']}: the user "
                               f"must be {source}.",))
        found.update(status=target, statusChanged=now_iso(), lastUpdated=now_iso())
        return Response(b"", status=200, content_type="application/json")

    @route("POST", "/api/v1/users/{user_id}/lifecycle/suspend")
    @requires("okta.users.manage")
    def suspend(self, request: Request, user_id: str) -> Any:
        return self._transition(user_id, "ACTIVE", "SUSPENDED", "suspend")

    @route("POST", "/api/v1/users/{user_id}/lifecycle/unsuspend")
    @requires("okta.users.manage")
    def unsuspend(self, request: Request, user_id: str) -> Any:
        return self._transition(user_id, "SUSPENDED", "ACTIVE", "unsuspend")

    @route("DELETE", "/api/v1/users/{user_id}/sessions")
    @requires("okta.users.manage")
    def revoke_sessions(self, request: Request, user_id: str) -> Any:
        found = self._user_or_404(user_id)
        if isinstance(found, Response):
            return found
        flags = {}
        for name, default in (("oauthTokens", False), ("forgetDevices", True)):
            raw = request.args.get(name)
            if raw not in (None, "true", "false"):
                return self.error(400, "E0000001", "Api validation failed: " + name,
                                  (f"{name}: must be true or false",))
            flags[name] = default if raw is None else raw == "true"
        self.sessions[found["id"]] = 0
        if flags["oauthTokens"]:
            self.oauth_tokens[found["id"]] = 0
        if flags["forgetDevices"]:
            self.remembered_devices[found["id"]] = 0
        return Response(status=204)

    @route("GET", "/api/v1/users/{user_id}/groups")
    @requires("okta.users.read")
    def user_groups(self, request: Request, user_id: str) -> Any:
        found = self._user_or_404(user_id)
        if isinstance(found, Response):
            return found
        return [self.render_group(g) for gid, g in sorted(self.groups.items())
                if found["id"] in self.members[gid]]
