"""A file event of an alerting Incydr session, as the service's poller hands it over.

The poller reads a session (`GET /v1/sessions`) and its file events
(`GET /v1/sessions/{id}/events`) and stores each event as `{"session": <the session as
Incydr answered>, "fileEvent": <the file event as Incydr answered>}`: both payloads unchanged,
so a playbook can read the alert's context (`event.raw.session.triggeredAlerts[0].ruleName`,
its scores) beside the file. The event is the file event's, with the session as its incident
(the files of one session are one violation) and its id `<sessionId>:<event id>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crownguard.engine.triage import (
    DEFAULT_OPTIONS,
    EventError,
    ModelMovementEvent,
    NormaliseOptions,
)

from .events import from_file_event

SESSION_EVENT = "incydr.session_event"


def is_session_event(raw: Mapping[str, Any]) -> bool:
    return isinstance(raw.get("session"), Mapping) and "fileEvent" in raw


def from_session_event(raw: Mapping[str, Any],
                       options: NormaliseOptions = DEFAULT_OPTIONS) -> ModelMovementEvent:
    """The session's file event as a ModelMovementEvent; problems name `session.` or
    `fileEvent.` fields."""
    session = raw["session"]
    session_id = session.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        raise EventError.at("session.sessionId", "is required", SESSION_EVENT)
    alerts = session.get("triggeredAlerts")
    if alerts is not None and (not isinstance(alerts, list)
                               or not all(isinstance(a, Mapping) for a in alerts)):
        raise EventError.at("session.triggeredAlerts", "expected a list of objects",
                            SESSION_EVENT)
    if not isinstance(raw.get("fileEvent"), Mapping):
        raise EventError.at("fileEvent", "expected an object (the session's file event)",
                            SESSION_EVENT)
    try:
        event = from_file_event(raw["fileEvent"], options)
    except EventError as exc:  # from_file_event stops at its first problem
        field, _, message = exc.problems[0].message.partition(": ")
        raise EventError.at(f"fileEvent.{field}", message, SESSION_EVENT) from None
    return ModelMovementEvent(f"{session_id}:{event.id}", event.time, event.actor, event.file,
                              event.destination, event.source, event.device, event.action,
                              SESSION_EVENT, raw, incident=session_id)
