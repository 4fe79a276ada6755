"""Actors (`/v1/actors`) and actor-based watchlists (`/v2/watchlists`, page/page_size paging).

A departing employee is an actor on the DEPARTING_EMPLOYEE watchlist whose `endDate` (the
departure date, yyyy-MM-dd) is set on the actor. Membership is included actors plus actors of
included departments, less excluded actors; `included-actors/add` of someone already included
is harmless, as the reference assumes.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from . import seed
from .base import IncydrMockBase, iso_ms

WATCHLIST_TYPES = ("DEPARTING_EMPLOYEE", "FLIGHT_RISK", "HIGH_IMPACT_EMPLOYEE",
                   "ELEVATED_ACCESS_PRIVILEGES", "PERFORMANCE_CONCERNS",
                   "POOR_SECURITY_PRACTICES", "SUSPICIOUS_SYSTEM_ACTIVITY", "NEW_EMPLOYEE",
                   "CONTRACT_EMPLOYEE", "CUSTOM")
MAX_ACTOR_IDS = 100
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ACTOR_PATCH_FIELDS = ("notes", "startDate", "endDate")


def _paging(request: Request, default_size: int = 100) -> tuple[int, int] | None:
    """`page` (from 1) and the page size; Incydr's gateway takes `page_size` or `pageSize`."""
    try:
        page = int(request.args.get("page") or 1)
        size = int(request.args.get("page_size") or request.args.get("pageSize")
                   or default_size)
    except ValueError:
        return None
    return (page, size) if page >= 1 and 1 <= size <= 1000 else None


class WatchlistRoutes(IncydrMockBase):
    """Actor lookup and update; watchlists, their members and included actors."""

    def watchlist_or_404(self, watchlist_id: str) -> Any:
        """The watchlist, or Incydr's 404 answer for an unknown id."""
        watchlist = self.watchlists.get(watchlist_id)
        if watchlist is None:
            return self.error(404, f"watchlist {watchlist_id} not found")
        return watchlist

    # actors -----------------------------------------------------------------------------------

    def actor_by_name(self, name: str) -> dict[str, Any] | None:
        wanted = name.lower()
        for actor in self.actors.values():
            names = [actor["name"], *(actor.get("alternateNames") or [])]
            if wanted in (n.lower() for n in names):
                return actor
        return None

    @route("GET", "/v1/actors/actor/name/{name}/parent")
    def actor_parent_by_name(self, request: Request, name: str) -> Any:
        caller = self.caller(request, "actors:read")
        if isinstance(caller, Response):
            return caller
        actor = self.actor_by_name(name)
        if actor is None:
            return self.error(404, f"actor {name} not found")
        parent = self.actors.get(actor.get("parentActorId") or "", actor)
        return copy.deepcopy(parent)

    @route("GET", "/v1/actors/actor/id/{actor_id}")
    @route("GET", "/v1/actors/actor/id/{actor_id}/parent")
    def actor_by_id(self, request: Request, actor_id: str) -> Any:
        caller = self.caller(request, "actors:read")
        if isinstance(caller, Response):
            return caller
        actor = self.actors.get(actor_id)
        if actor is None:
            return self.error(404, f"actor {actor_id} not found")
        if request.path.endswith("/parent"):
            actor = self.actors.get(actor.get("parentActorId") or "", actor)
        return copy.deepcopy(actor)

    @route("PATCH", "/v1/actors/actor/id/{actor_id}")
    def update_actor(self, request: Request, actor_id: str) -> Any:
        caller = self.caller(request, "actors:write")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        actor = self.actors.get(actor_id)
        if actor is None:
            return self.error(404, f"actor {actor_id} not found")
        unknown = sorted(set(body) - set(ACTOR_PATCH_FIELDS))
        if unknown:
            return self.error(400, f"unknown field(s): {', '.join(unknown)}")
        for key in ("startDate", "endDate"):
            value = body.get(key)
            if value is not None and not (isinstance(value, str) and DATE.match(value)):
                return self.error(400, f"{key} must be a date in yyyy-MM-dd format")
        actor.update({k: body[k] for k in ACTOR_PATCH_FIELDS if k in body})
        return copy.deepcopy(actor)

    # watchlists -------------------------------------------------------------------------------

    def watchlist_json(self, watchlist: seed.Watchlist) -> dict[str, Any]:
        return {
            "watchlistId": watchlist.watchlist_id, "listType": watchlist.list_type,
            "title": watchlist.title, "description": watchlist.description,
            "tenantId": self.tenant_id,
            "stats": {"includedActorsCount": len(watchlist.included_actors),
                      "includedDepartmentsCount": len(watchlist.included_departments),
                      "includedDirectoryGroupsCount": 0,
                      "excludedActorsCount": len(watchlist.excluded_actors)},
        }

    def member_json(self, actor_id: str, added_ms: int) -> dict[str, Any]:
        actor = self.actors.get(actor_id, {})
        # "actorname" (lower-case n) is the field name the official SDK reads.
        return {"actorId": actor_id, "actorname": actor.get("name"), "addedTime": iso_ms(added_ms)}

    @route("GET", "/v2/watchlists")
    def list_watchlists(self, request: Request) -> Any:
        caller = self.caller(request, "watchlists:read")
        if isinstance(caller, Response):
            return caller
        paging = _paging(request)
        if paging is None:
            return self.error(400, "page must be at least 1 and pageSize between 1 and 1000")
        page, size = paging
        actor_id = request.args.get("actorId")
        found = [w for w in self.watchlists.values()
                 if not actor_id or actor_id in self.members_of(w.watchlist_id)]
        return {"watchlists": [self.watchlist_json(w)
                               for w in found[(page - 1) * size:page * size]],
                "totalCount": len(found)}

    @route("POST", "/v2/watchlists")
    def create_watchlist(self, request: Request) -> Any:
        caller = self.caller(request, "watchlists:write")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        kind = body.get("watchlistType")
        if kind not in WATCHLIST_TYPES:
            return self.error(400, f"watchlistType must be one of {', '.join(WATCHLIST_TYPES)}")
        if kind == "CUSTOM" and not body.get("title"):
            return self.error(400, "a CUSTOM watchlist needs a title")
        if kind != "CUSTOM" and any(w.list_type == kind for w in self.watchlists.values()):
            return self.error(409, f"a {kind} watchlist already exists")
        watchlist = seed.Watchlist(str(uuid.uuid4()), kind,
                                   body.get("title") if kind == "CUSTOM" else None,
                                   body.get("description") if kind == "CUSTOM" else None)
        self.watchlists[watchlist.watchlist_id] = watchlist
        return self.watchlist_json(watchlist)

    @route("GET", "/v2/watchlists/{watchlist_id}")
    def get_watchlist(self, request: Request, watchlist_id: str) -> Any:
        caller = self.caller(request, "watchlists:read")
        if isinstance(caller, Response):
            return caller
        watchlist = self.watchlist_or_404(watchlist_id)
        if isinstance(watchlist, Response):
            return watchlist
        return self.watchlist_json(watchlist)

    @route("GET", "/v2/watchlists/{watchlist_id}/members")
    @route("GET", "/v2/watchlists/{watchlist_id}/included-actors")
    def list_members(self, request: Request, watchlist_id: str) -> Any:
        caller = self.caller(request, "watchlists:read")
        if isinstance(caller, Response):
            return caller
        watchlist = self.watchlist_or_404(watchlist_id)
        if isinstance(watchlist, Response):
            return watchlist
        paging = _paging(request)
        if paging is None:
            return self.error(400, "page must be at least 1 and page_size between 1 and 1000")
        page, size = paging
        included = request.path.endswith("/included-actors")
        members = watchlist.included_actors if included else self.members_of(watchlist_id)
        items = sorted(members.items(), key=lambda kv: (kv[1], kv[0]))
        chunk = [self.member_json(a, t) for a, t in items[(page - 1) * size:page * size]]
        key = "includedActors" if included else "watchlistMembers"
        return {key: chunk, "totalCount": len(items)}

    @route("GET", "/v2/watchlists/{watchlist_id}/members/{actor_id}")
    @route("GET", "/v2/watchlists/{watchlist_id}/included-actors/{actor_id}")
    def get_member(self, request: Request, watchlist_id: str, actor_id: str) -> Any:
        caller = self.caller(request, "watchlists:read")
        if isinstance(caller, Response):
            return caller
        watchlist = self.watchlist_or_404(watchlist_id)
        if isinstance(watchlist, Response):
            return watchlist
        members = (watchlist.included_actors if "/included-actors/" in request.path
                   else self.members_of(watchlist_id))
        if actor_id not in members:
            return self.error(404, f"actor {actor_id} is not on watchlist {watchlist_id}")
        return self.member_json(actor_id, members[actor_id])

    @route("POST", "/v2/watchlists/{watchlist_id}/included-actors/add")
    @route("POST", "/v2/watchlists/{watchlist_id}/included-actors/delete")
    def change_included_actors(self, request: Request, watchlist_id: str) -> Any:
        caller = self.caller(request, "watchlists:write")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        watchlist = self.watchlist_or_404(watchlist_id)
        if isinstance(watchlist, Response):
            return watchlist
        ids = body.get("actorIds")
        if not isinstance(ids, list) or not ids or len(ids) > MAX_ACTOR_IDS:
            return self.error(400, f"actorIds must list 1 to {MAX_ACTOR_IDS} actor ids")
        unknown = [i for i in ids if i not in self.actors]
        if unknown:
            return self.error(400, f"unknown actor id(s): {', '.join(map(str, unknown))}")
        for actor_id in ids:
            if request.path.endswith("/add"):
                watchlist.included_actors.setdefault(actor_id, self.now_ms())
            else:
                watchlist.included_actors.pop(actor_id, None)
        return {}

    # helpers for tests and the demo ---------------------------------------------------------

    def add_actor(self, email: str, **fields: Any) -> str:
        """Add an actor (an employee) and return the new actor id."""
        with self.state_lock:
            actor_id = str(4251230987654322000 + len(self.actors))
            self.actors[actor_id] = {
                "actorId": actor_id, "name": email, "alternateNames": [], "active": True,
                "inScope": True, "department": None, "division": None, "title": None,
                "employeeType": "full-time", "country": None, "region": None,
                "locality": None, "managerActorId": None, "notes": None,
                "parentActorId": None, "startDate": None, "endDate": None,
                "firstName": None, "lastName": None, **fields}
        return actor_id

    def watchlist_id(self, list_type: str) -> str:
        return next(w.watchlist_id for w in self.watchlists.values() if w.list_type == list_type)

    def remove_watchlist(self, list_type: str) -> None:
        with self.state_lock:
            self.watchlists.pop(self.watchlist_id(list_type))
