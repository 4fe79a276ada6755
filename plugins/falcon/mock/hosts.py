"""Hosts in the Falcon mock: FQL device queries paged with offset/limit, host records (whose
pending containment settles after `containment_polls` reads) and host actions."""

from __future__ import annotations

from werkzeug import Request, Response

from crownguard.engine import route

from .base import FalconMockBase
from .model import compile_fql

HOST_ACTIONS = {"contain", "lift_containment", "hide_host", "unhide_host",
                "detection_suppress", "detection_unsuppress"}


class HostRoutes(FalconMockBase):
    """`/devices/...`: host queries, host records and containment."""

    @route("GET", "/devices/queries/devices/v1")
    def query_devices(self, request: Request) -> Response:
        if denied := self.authorize(request, "devices:read"):
            return denied
        try:
            offset = int(request.args.get("offset", 0))
            limit = int(request.args.get("limit", 100))
        except ValueError:
            return self.fail(400, "offset and limit must be integers")
        if not 1 <= limit <= 5000 or offset < 0:
            return self.fail(400, "limit must be between 1 and 5000")
        records = [h.record() for h in self.hosts.values()]
        if request.args.get("filter"):
            try:
                matches = compile_fql(request.args["filter"])
            except ValueError as exc:
                return self.fail(400, f"Invalid filter: {exc}")
            records = [r for r in records if matches(r)]
        sort = request.args.get("sort", "")
        if sort:
            field, _, direction = sort.replace("|", ".").partition(".")
            records.sort(key=lambda r: str(r.get(field, "")), reverse=direction == "desc")
        page = [r["device_id"] for r in records[offset:offset + limit]]
        return self.envelope(page, pagination={"offset": offset, "limit": limit,
                                               "total": len(records)})

    def _details(self, ids: list[str]) -> Response:
        if not ids:
            return self.fail(400, "ids is required")
        if len(ids) > 5000:
            return self.fail(400, "too many ids")
        found = []
        for aid in ids:
            host = self.hosts.get(aid.lower())
            if host is None:
                continue
            if host.pending_reads > 0:
                host.pending_reads -= 1
                if host.pending_reads == 0:
                    host.status = {"containment_pending": "contained",
                                   "lift_containment_pending": "normal"}.get(host.status,
                                                                             host.status)
            found.append(host.record())
        if not found:
            return self.envelope([], 404, errors=[{"code": 404,
                                                   "message": "Resource Not Found"}])
        return self.envelope(found)

    @route("GET", "/devices/entities/devices/v2")
    def device_details(self, request: Request) -> Response:
        if denied := self.authorize(request, "devices:read"):
            return denied
        ids = request.args.getlist("ids")
        if len(ids) > 100:
            return self.fail(400, "at most 100 ids; use POST for more")
        return self._details(ids)

    @route("POST", "/devices/entities/devices/v2")
    def device_details_post(self, request: Request) -> Response:
        if denied := self.authorize(request, "devices:read"):
            return denied
        body = request.get_json(silent=True)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return self.fail(400, "body must be {\"ids\": [...]}")
        return self._details([str(i) for i in ids])

    @route("POST", "/devices/entities/devices-actions/v2")
    def device_action(self, request: Request) -> Response:
        if denied := self.authorize(request, "devices:write"):
            return denied
        action = request.args.get("action_name", "")
        if action not in HOST_ACTIONS:
            return self.fail(400, f"invalid action_name '{action}'")
        body = request.get_json(silent=True)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids:
            return self.fail(400, "body must be {\"ids\": [...]}")
        resources = []
        for aid in (str(i).lower() for i in ids):
            host = self.hosts.get(aid)
            if host is None:
                return self.fail(404, f"device {aid} not found")
            if action == "contain" and host.status not in ("contained", "containment_pending"):
                host.status, host.pending_reads = "containment_pending", self.containment_polls
            elif action == "lift_containment" and host.status not in (
                    "normal", "lift_containment_pending"):
                host.status, host.pending_reads = "lift_containment_pending", \
                    self.containment_polls
            if host.pending_reads == 0 and host.status.endswith("_pending"):
                host.status = "contained" if action == "contain" else "normal"
            resources.append({"id": aid, "path": ""})
        return self.envelope(resources, 202)
