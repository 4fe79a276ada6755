"""Who is on which watchlist: is the person leaving, and when; put them on or take them off."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, NotFoundError, action

from ..client import WATCHLIST_PAGE_SIZE, IncydrClient
from .schemas import (
    DATE,
    ID,
    NULLABLE_STRING,
    PAGED_OUTPUT,
    USER,
    WATCHLIST_TYPE,
)

DEPARTING = "DEPARTING_EMPLOYEE"
ACTOR_FIELDS = {"department": "department", "title": "title", "division": "division",
                "employee_type": "employeeType", "country": "country", "region": "region",
                "locality": "locality", "manager_actor_id": "managerActorId",
                "start_date": "startDate", "end_date": "endDate"}
WATCHLIST_SELECTOR: dict[str, Any] = {
    "watchlist_type": {**WATCHLIST_TYPE, "default": DEPARTING},
    "watchlist_id": {**ID, "description": "A watchlist by id (a CUSTOM one); wins over "
                                           "watchlist_type."},
}


def _watchlist(client: IncydrClient, inputs: dict[str, Any]) -> tuple[str, str]:
    """(watchlist id, list type) for the watchlist_id or watchlist_type input."""
    if inputs.get("watchlist_id"):
        for watchlist in client.watchlists():
            if watchlist.get("watchlistId") == inputs["watchlist_id"]:
                return str(watchlist["watchlistId"]), str(watchlist.get("listType"))
        raise NotFoundError(f"no watchlist with id '{inputs['watchlist_id']}'",
                            vendor=client.vendor, operation="list watchlists")
    found = client.watchlist_by_type(inputs.get("watchlist_type", DEPARTING))
    return str(found["watchlistId"]), str(found.get("listType"))


@action(
    "incydr.get_watchlists_for_user",
    connection="incydr",
    side_effect=False,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["user"],
        "properties": {"user": USER},
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["actor_id", "actor_name", "departing", "departure_date", "watchlists",
                     "actor"],
        "properties": {
            "actor_id": {"type": "string"},
            "actor_name": NULLABLE_STRING,
            "departing": {"type": "boolean"},
            "departure_date": NULLABLE_STRING,
            "watchlists": {"type": "array", "items": {
                "type": "object", "required": ["watchlist_id", "type"],
                "properties": {"watchlist_id": {"type": "string"}, "type": {"type": "string"},
                               "title": NULLABLE_STRING}}},
            "actor": {"type": "object", "additionalProperties": False,
                      "properties": {k: {"type": ["string", "null"]} for k in ACTOR_FIELDS}},
        },
    },
)
def get_watchlists_for_user(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Which Incydr watchlists a person is on, whether they are leaving and when.

    Resolves the person to their actor (`GET /v1/actors/actor/name/{name}/parent`, or by actor
    id), then lists the watchlists that have them as a member (`GET /v2/watchlists?actorId=`,
    which counts included departments too). `departing` is true on the DEPARTING_EMPLOYEE
    watchlist; `departure_date` is the actor's end date. `actor` carries department, title,
    manager and location (country, locality), e.g. to pick the language of a nudge. Needs an API
    client allowed to read actors and watchlists.
    """
    client = ctx.client(IncydrClient)
    actor = client.find_actor(inputs["user"])
    lists = client.watchlists(actor_id=str(actor["actorId"]))
    departing = any(w.get("listType") == DEPARTING for w in lists)
    return {
        "actor_id": str(actor["actorId"]), "actor_name": actor.get("name"),
        "departing": departing, "departure_date": actor.get("endDate"),
        "watchlists": [{"watchlist_id": str(w.get("watchlistId")),
                        "type": str(w.get("listType")), "title": w.get("title")} for w in lists],
        "actor": {key: (None if actor.get(field) is None else str(actor.get(field)))
                  for key, field in ACTOR_FIELDS.items()},
    }


@action(
    "incydr.add_to_watchlist",
    connection="incydr",
    side_effect=True,
    undo="incydr.remove_from_watchlist",
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["user"],
        "properties": {"user": USER, **WATCHLIST_SELECTOR,
                       "departure_date": {**DATE, "description": "Departure date to set on "
                                                                 "the actor (yyyy-MM-dd)."}},
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["actor_id", "watchlist_id", "watchlist_type", "added", "departure_date",
                     "departure_date_changed", "changed"],
        "properties": {
            "actor_id": {"type": "string"}, "watchlist_id": {"type": "string"},
            "watchlist_type": {"type": "string"}, "added": {"type": "boolean"},
            "departure_date": NULLABLE_STRING, "previous_departure_date": NULLABLE_STRING,
            "departure_date_changed": {"type": "boolean"}, "changed": {"type": "boolean"},
        },
    },
)
def add_to_watchlist(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Put a person on an Incydr watchlist (default DEPARTING_EMPLOYEE), with a departure date.

    Adds the actor as an included actor (`POST /v2/watchlists/{id}/included-actors/add`) unless
    they already are, and sets `departure_date` as the actor's end date
    (`PATCH /v1/actors/actor/id/{id}`) unless it already is that date; `changed` is false when
    nothing needed doing. Undo with incydr.remove_from_watchlist. Needs an API client allowed
    to update watchlists (and actors, for the date).
    """
    client = ctx.client(IncydrClient)
    actor = client.find_actor(inputs["user"])
    actor_id = str(actor["actorId"])
    watchlist_id, list_type = _watchlist(client, inputs)
    added = not client.is_included(watchlist_id, actor_id)
    if added:
        client.include_actor(watchlist_id, actor_id)
    previous_date = actor.get("endDate")
    wanted = inputs.get("departure_date")
    date_changed = bool(wanted) and wanted != previous_date
    if date_changed:
        client.update_actor(actor_id, {"endDate": wanted})
    return {"actor_id": actor_id, "watchlist_id": watchlist_id, "watchlist_type": list_type,
            "added": added, "departure_date": wanted or previous_date,
            "previous_departure_date": previous_date, "departure_date_changed": date_changed,
            "changed": added or date_changed}


@action(
    "incydr.remove_from_watchlist",
    connection="incydr",
    side_effect=True,
    undo="incydr.add_to_watchlist",
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["user"],
        "properties": {"user": USER, **WATCHLIST_SELECTOR,
                       "clear_departure_date": {"type": "boolean", "default": False}},
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["actor_id", "watchlist_id", "removed", "departure_date_cleared",
                     "changed"],
        "properties": {
            "actor_id": {"type": "string"}, "watchlist_id": {"type": "string"},
            "watchlist_type": {"type": "string"}, "removed": {"type": "boolean"},
            "departure_date_cleared": {"type": "boolean"}, "changed": {"type": "boolean"},
        },
    },
)
def remove_from_watchlist(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Take a person off an Incydr watchlist (the undo of incydr.add_to_watchlist).

    Removes the included actor (`POST /v2/watchlists/{id}/included-actors/delete`) when they
    are one, and with `clear_departure_date` clears the actor's end date; `changed` is false
    when there was nothing to remove. Someone on the list only through an included department
    stays a member. Needs an API client allowed to update watchlists (and actors).
    """
    client = ctx.client(IncydrClient)
    actor = client.find_actor(inputs["user"])
    actor_id = str(actor["actorId"])
    watchlist_id, list_type = _watchlist(client, inputs)
    removed = client.is_included(watchlist_id, actor_id)
    if removed:
        client.remove_actor(watchlist_id, actor_id)
    cleared = bool(inputs.get("clear_departure_date")) and actor.get("endDate") is not None
    if cleared:
        client.update_actor(actor_id, {"endDate": None})
    return {"actor_id": actor_id, "watchlist_id": watchlist_id, "watchlist_type": list_type,
            "removed": removed, "departure_date_cleared": cleared,
            "changed": removed or cleared}


@action(
    "incydr.list_watchlist_members",
    connection="incydr",
    side_effect=False,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {**WATCHLIST_SELECTOR,
                       "max_members": {"type": "integer", "minimum": 1, "maximum": 100_000,
                                       "default": 1000},
                       "page_size": {"type": "integer", "minimum": 1, "maximum": 1000,
                                     "default": WATCHLIST_PAGE_SIZE}},
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["watchlist_id", "watchlist_type", "members", "returned", "total_count",
                     "truncated", "pages"],
        "properties": {
            "watchlist_id": {"type": "string"}, "watchlist_type": {"type": "string"},
            "members": {"type": "array", "items": {
                "type": "object", "required": ["actor_id"],
                "properties": {"actor_id": {"type": "string"}, "actor_name": NULLABLE_STRING,
                               "added_time": NULLABLE_STRING}}},
            **PAGED_OUTPUT,
        },
    },
)
def list_watchlist_members(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """List the members of an Incydr watchlist (default: everyone who is leaving).

    `GET /v2/watchlists/{id}/members`, paged with `page` (from 1) and `page_size`, until
    `max_members`. Members include actors of included departments and directory groups, not
    only the individually included ones. Needs an API client allowed to read watchlists.
    """
    client = ctx.client(IncydrClient)
    watchlist_id, list_type = _watchlist(client, inputs)
    page = client.watchlist_members(watchlist_id, int(inputs.get("max_members", 1000)),
                                    int(inputs.get("page_size", WATCHLIST_PAGE_SIZE)))
    members = [{"actor_id": str(m.get("actorId")),
                "actor_name": m.get("actorname", m.get("actorName")),
                "added_time": m.get("addedTime")} for m in page.items]
    return {"watchlist_id": watchlist_id, "watchlist_type": list_type, "members": members,
            "returned": len(members), "total_count": page.total, "truncated": page.truncated,
            "pages": page.pages}
