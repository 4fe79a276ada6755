"""Sessions (Incydr's alerts today) and the older alert records: read them, triage them."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, InputError, action

from ..client import MAX_SESSION_PAGE_SIZE, IncydrClient
from ..query import QueryInputError, epoch_ms
from .schemas import (
    ID,
    NULLABLE_STRING,
    OBJECTS,
    PAGED_OUTPUT,
    SESSION_STATES,
    SESSION_SUMMARY,
    SETTABLE_STATES,
    TIMESTAMP,
    USER,
    session_summary,
)

MAX_NOTE = 2000


@action(
    "incydr.get_session",
    connection="incydr",
    side_effect=False,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["session_id"],
        "properties": {"session_id": ID,
                       "include_events": {"type": "boolean", "default": False}},
    },
    output_schema={
        "type": "object",
        "required": [*SESSION_SUMMARY["required"], "session", "notes"],
        "properties": {**SESSION_SUMMARY["properties"], "session": {"type": "object"},
                       "notes": {"type": "array", "items": {"type": "string"}},
                       "events": OBJECTS},
    },
)
def get_session(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Fetch one Incydr session (the alert a detection raised) with its state and score.

    `GET /v1/sessions/{id}`; the output has the latest state (OPEN, IN_PROGRESS, CLOSED_TP...),
    severity (0 no risk .. 4 critical), score, the triggered alert ids, the notes and the raw
    session; with `include_events` also the file events behind it
    (`GET /v1/sessions/{id}/events`). Needs an API client allowed to read sessions/alerts.
    """
    client = ctx.client(IncydrClient)
    session = client.get_session(inputs["session_id"])
    output = {**session_summary(session), "session": session,
              "notes": [str(n.get("content")) for n in session.get("notes") or []
                        if isinstance(n, dict)]}
    if inputs.get("include_events"):
        output["events"] = client.session_file_events(inputs["session_id"])
    return output


@action(
    "incydr.search_sessions",
    connection="incydr",
    side_effect=False,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "user": USER,
            "states": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"enum": SESSION_STATES}},
            "severities": {"type": "array", "minItems": 1, "uniqueItems": True,
                           "items": {"type": "integer", "minimum": 0, "maximum": 4}},
            "start_time": TIMESTAMP,
            "end_time": TIMESTAMP,
            "has_alerts": {"type": "boolean", "default": True},
            "max_sessions": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 50},
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_SESSION_PAGE_SIZE,
                          "default": MAX_SESSION_PAGE_SIZE},
        },
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["sessions", "returned", "total_count", "truncated", "pages"],
        "properties": {"sessions": {"type": "array", "items": SESSION_SUMMARY},
                       **PAGED_OUTPUT},
    },
)
def search_sessions(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """List Incydr sessions for a person, a state, a severity or a time window, newest first.

    `GET /v1/sessions`, paged with `page_number` (from 0) and `page_size` (at most 50) until
    `max_sessions`. A `user` is resolved to its actor first. By default only sessions that
    raised alerts, as in the Incydr console. Needs an API client allowed to read sessions.
    """
    client = ctx.client(IncydrClient)
    params: dict[str, Any] = {"has_alerts": str(inputs.get("has_alerts", True)).lower(),
                              "order_by": "end_time", "sort_direction": "desc",
                              "state": inputs.get("states"),
                              "severity": inputs.get("severities")}
    try:
        for key, name in (("start_time", "on_or_after"), ("end_time", "before")):
            if inputs.get(key):
                params[name] = epoch_ms(inputs[key], end_of_day=key == "end_time")
    except QueryInputError as exc:
        raise InputError(f"incydr.search_sessions: {exc}") from None
    if inputs.get("user"):
        params["actor_id"] = client.find_actor(inputs["user"])["actorId"]
    page = client.search_sessions(params, int(inputs.get("max_sessions", 50)),
                                  int(inputs.get("page_size", MAX_SESSION_PAGE_SIZE)))
    return {"sessions": [session_summary(s) for s in page.items], "returned": len(page.items),
            "total_count": page.total, "truncated": page.truncated, "pages": page.pages}


@action(
    "incydr.get_alert",
    connection="incydr",
    side_effect=False,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["alert_id"],
        "properties": {"alert_id": ID},
    },
    output_schema={
        "type": "object",
        "required": ["alert_id", "state", "alert"],
        "properties": {
            "alert_id": {"type": "string"}, "state": NULLABLE_STRING, "name": NULLABLE_STRING,
            "actor": NULLABLE_STRING, "actor_id": NULLABLE_STRING,
            "risk_severity": NULLABLE_STRING, "created_at": NULLABLE_STRING,
            "rule_id": NULLABLE_STRING, "watchlists": OBJECTS, "alert": {"type": "object"},
        },
    },
)
def get_alert(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Fetch one Incydr alert by id (the older alerts API; sessions replace it).

    `POST /v1/alerts/query-details` with the id; the output has the alert's state, rule, actor,
    risk severity and the watchlists the actor was on when it fired, plus the raw alert. An id
    Incydr does not know fails with NotFoundError. Needs an API client allowed to read alerts.
    """
    alert = ctx.client(IncydrClient).get_alert(inputs["alert_id"])
    return {"alert_id": str(alert.get("id")), "state": alert.get("state"),
            "name": alert.get("name"), "actor": alert.get("actor"),
            "actor_id": alert.get("actorId"), "risk_severity": alert.get("riskSeverity"),
            "created_at": alert.get("createdAt"), "rule_id": alert.get("ruleId"),
            "watchlists": [w for w in alert.get("watchlists") or [] if isinstance(w, dict)],
            "alert": alert}


@action(
    "incydr.update_session_state",
    connection="incydr",
    side_effect=True,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["session_id", "state"],
        "properties": {
            "session_id": ID,
            "state": {"enum": SETTABLE_STATES},
            "note": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE},
        },
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["session_id", "state", "previous_state", "state_changed", "note_added",
                     "changed"],
        "properties": {
            "session_id": {"type": "string"}, "state": {"enum": SETTABLE_STATES},
            "previous_state": {"type": "string"}, "state_changed": {"type": "boolean"},
            "note_added": {"type": "boolean"}, "changed": {"type": "boolean"},
        },
    },
)
def update_session_state(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Mark an Incydr session (alert) in progress or closed, optionally with a note.

    Reads the session first: the state is changed (`POST /v1/sessions/change-state`) only when
    it differs, and the note is added (`POST /v1/sessions/{id}/add-note`) only when the session
    has no note with the same text, so a repeat reports `changed: false`. `previous_state` is
    in the output: set it back with this same action to undo. Needs an API client allowed to
    update sessions.
    """
    client = ctx.client(IncydrClient)
    session_id, state, note = inputs["session_id"], inputs["state"], inputs.get("note")
    session = client.get_session(session_id)
    previous = session_summary(session)["state"]
    state_changed = previous != state
    if state_changed:
        client.change_session_state(session_id, state)
    existing_notes = {n.get("content") for n in session.get("notes") or [] if isinstance(n, dict)}
    note_added = bool(note) and note not in existing_notes
    if note_added:
        client.add_session_note(session_id, str(note))
    return {"session_id": session_id, "state": state, "previous_state": previous,
            "state_changed": state_changed, "note_added": note_added,
            "changed": state_changed or note_added}

