"""Groups in the Okta mock: list and search, a group, its members and membership changes
(refused for groups Okta does not manage)."""

from __future__ import annotations

from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import OktaMockBase, now_iso, requires
from .search import InvalidSearch


class GroupRoutes(OktaMockBase):
    """`/api/v1/groups/...`."""

    def _group_or_404(self, group_id: str) -> dict[str, Any] | Response:
        if group_id not in self.groups:
            return self.error(404, "E0000007",
                              f"Not found: Resource not found: {group_id} (UserGroup)")
        return self.groups[group_id]

    @route("GET", "/api/v1/groups")
    @requires("okta.groups.read")
    def list_groups(self, request: Request) -> Any:
        records = [self.render_group(g) for g in self.groups.values()]
        try:
            records = self._filtered(request, records)
        except InvalidSearch as exc:
            return self.error(400, "E0000031", "Invalid search criteria.", (str(exc),))
        q = (request.args.get("q") or "").lower()
        if q:
            records = [r for r in records if r["profile"]["name"].lower().startswith(q)]
        return self.page(request, records, "/api/v1/groups")

    @route("GET", "/api/v1/groups/{group_id}")
    @requires("okta.groups.read")
    def get_group(self, request: Request, group_id: str) -> Any:
        found = self._group_or_404(group_id)
        return found if isinstance(found, Response) else self.render_group(found)

    @route("GET", "/api/v1/groups/{group_id}/users")
    @requires("okta.groups.read")
    def group_users(self, request: Request, group_id: str) -> Any:
        found = self._group_or_404(group_id)
        if isinstance(found, Response):
            return found
        users = [self.render_user(self.users[u]) for u in self.members[group_id]]
        return self.page(request, users, f"/api/v1/groups/{group_id}/users")

    @route("PUT", "/api/v1/groups/{group_id}/users/{user_id}")
    @route("DELETE", "/api/v1/groups/{group_id}/users/{user_id}")
    @requires("okta.groups.manage")
    def membership(self, request: Request, group_id: str, user_id: str) -> Any:
        group = self._group_or_404(group_id)
        if isinstance(group, Response):
            return group
        user = self._user_or_404(user_id)
        if isinstance(user, Response):
            return user
        if group["type"] != "OKTA_GROUP":
            return self.error(403, "E0000006",
                              "You do not have permission to perform the requested action",
                              (f"Memberships of {group['type']} groups cannot be changed in "
                               "Okta.",))
        if request.method == "PUT":
            self.members[group_id].add(user["id"])
        else:
            self.members[group_id].discard(user["id"])
        group["lastMembershipUpdated"] = now_iso()
        return Response(status=204)
