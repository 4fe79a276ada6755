"""The Incydr event source: which payloads are Incydr's, and the events each one holds.

A file event (`@timestamp`, or `event`, `file` and `user`), an alert (`observations`), a
Forensic Search answer (`fileEvents`), an alerts answer (`alerts`) or a file event of an
alerting session as the poller stores it (`session` and `fileEvent`); registered with the
engine through `crownguard_register_event_sources`, as any third-party source would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crownguard.engine import EventSource
from crownguard.engine.triage import DEFAULT_OPTIONS, ModelMovementEvent, NormaliseOptions

from .events import ALERT, FILE_EVENT, from_alert, from_file_event
from .session_events import SESSION_EVENT, from_session_event, is_session_event

FILE_EVENTS = "incydr.file_events_response"
ALERTS = "incydr.alerts_response"


def recognise(raw: Any) -> str | None:
    """The Incydr format of a payload, or None when it is not Incydr's."""
    if raw.__class__ is not dict and not isinstance(raw, Mapping):  # a dict: no ABC check
        return None
    if "@timestamp" in raw or ("event" in raw and "file" in raw and "user" in raw):
        return FILE_EVENT
    if "observations" in raw and ("actor" in raw or "ruleId" in raw):
        return ALERT
    if isinstance(raw.get("fileEvents"), list):
        return FILE_EVENTS
    if isinstance(raw.get("alerts"), list):
        return ALERTS
    if is_session_event(raw):
        return SESSION_EVENT
    return None


def events_of(raw: Any, options: NormaliseOptions | None = None) -> list[ModelMovementEvent]:
    """Every event of a recognised payload: a file event, an alert's files, a search answer."""
    opts = options or DEFAULT_OPTIONS
    if "@timestamp" in raw:  # the hot path: one file event, its shape known at a glance
        return [from_file_event(raw, opts)]
    shape = recognise(raw)
    if shape == FILE_EVENT:
        return [from_file_event(raw, opts)]
    if shape == ALERT:
        return from_alert(raw, opts)
    if shape == FILE_EVENTS:
        return [from_file_event(item, opts) for item in raw["fileEvents"]]
    if shape == ALERTS:
        return [event for alert in raw["alerts"] for event in from_alert(alert, opts)]
    if shape == SESSION_EVENT:
        return [from_session_event(raw, opts)]
    raise ValueError("not an Incydr payload")  # triage asks recognise() first


def split(raw: Any) -> list[tuple[str, Any]] | None:
    """A search or alerts answer's items, each in its wrapper (so it is read exactly as in
    the answer) and labelled for error messages; None for a single event or alert."""
    shape = recognise(raw)
    if shape == FILE_EVENTS:
        return [(f"fileEvents item {n}", {"fileEvents": [item]})
                for n, item in enumerate(raw["fileEvents"], 1)]
    if shape == ALERTS:
        return [(f"alerts item {n}", {"alerts": [item]}) for n, item in enumerate(raw["alerts"], 1)]
    return None


EVENT_SOURCE = EventSource("incydr", recognise, events_of,
                           description="an Incydr file event or alert", split=split)
