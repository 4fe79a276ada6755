"""Groups in the Entra mock: get, list, and member references added and removed (refused
for groups Graph cannot change: dynamic, mail-enabled, synced from on-premises)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from werkzeug import Request, Response

from crownguard.engine import route

from .base import (
    GROUP_FILTERABLE,
    GROUP_PROPERTIES,
    ON_PREM_MASTERED,
    READ_GROUPS,
    WRITE_MEMBERS,
    EntraMockBase,
    requires,
)


class GroupRoutes(EntraMockBase):
    """`/v1.0/groups/...`."""

    @route("GET", "/v1.0/groups/{group_id}")
    @requires(*READ_GROUPS)
    def get_group(self, request: Request, group_id: str) -> Any:
        group = self._group(group_id)
        if isinstance(group, Response):
            return group
        selected = self.select(request, group, GROUP_PROPERTIES, None, "group")
        if isinstance(selected, Response):
            return selected
        return {"@odata.context": f"{self.base_url}/v1.0/$metadata#groups/$entity", **selected}

    @route("GET", "/v1.0/groups")
    @requires(*READ_GROUPS)
    def list_groups(self, request: Request) -> Any:
        return self.collection(request, list(self.groups.values()), "groups", GROUP_PROPERTIES,
                               None, GROUP_FILTERABLE, "group")

    def _membership_refusal(self, group: dict[str, Any]) -> Response | None:
        if group.get("onPremisesSyncEnabled"):
            return self.graph_error(400, "Request_BadRequest", ON_PREM_MASTERED)
        if "DynamicMembership" in group["groupTypes"]:
            return self.graph_error(400, "Request_BadRequest",
                                    "Insufficient privileges to complete the operation. Members "
                                    "of a dynamic group cannot be changed.")
        if group["mailEnabled"] and "Unified" not in group["groupTypes"]:
            return self.graph_error(400, "Request_BadRequest",
                                    "Cannot Update a mail-enabled security groups and or "
                                    "distribution list.")
        return None

    @route("POST", "/v1.0/groups/{group_id}/members/$ref")
    @requires(*WRITE_MEMBERS)
    def add_member_ref(self, request: Request, group_id: str) -> Any:
        group = self._group(group_id)
        if isinstance(group, Response):
            return group
        body = request.get_json(silent=True)
        reference = body.get("@odata.id") if isinstance(body, dict) else None
        path = urlsplit(reference).path if isinstance(reference, str) else ""
        parts = path.rstrip("/").split("/")
        if len(parts) < 3 or parts[-2] not in ("directoryObjects", "users"):
            return self.graph_error(400, "BadRequest",
                                    "Invalid object identifier '@odata.id'.")
        user = self._user(parts[-1])
        if isinstance(user, Response):
            return user
        refused = self._membership_refusal(group)
        if refused is not None:
            return refused
        if user["id"] in self.members[group_id]:
            return self.graph_error(400, "Request_BadRequest",
                                    "One or more added object references already exist for the "
                                    "following modified properties: 'members'.")
        self.members[group_id].add(user["id"])
        return Response(status=204)

    @route("DELETE", "/v1.0/groups/{group_id}/members/{member_id}/$ref")
    @requires(*WRITE_MEMBERS)
    def remove_member_ref(self, request: Request, group_id: str, member_id: str) -> Any:
        group = self._group(group_id)
        if isinstance(group, Response):
            return group
        if member_id not in self.members[group_id]:
            return self.graph_error(404, "Request_ResourceNotFound",
                                    f"Resource '{member_id}' does not exist or one of its queried "
                                    "reference-property objects are not present.")
        refused = self._membership_refusal(group)
        if refused is not None:
            return refused
        self.members[group_id].discard(member_id)
        return Response(status=204)
