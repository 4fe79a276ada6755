"""Model-movement events: the normalised event, its schema, and mappers from what tools send.

    normalise(raw, mapping=None, options=None) -> ModelMovementEvent
    normalise_many(raw, ...) -> list[ModelMovementEvent]     (alerts, lists, search responses)
    recognise(raw) -> "crownguard" | "incydr.file_event" | "incydr.alert" | ...

A raw payload is recognised by its shape: a normalised event (its `schema` marker or the
actor/file/destination objects), an Incydr v2 file event (`@timestamp`, `event`, `file`,
`user`), an Incydr alert (`observations`), an Incydr search or alert response, or a list.
Anything else needs a webhook mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import EventError
from .classify import DEFAULT_OPTIONS, NormaliseOptions
from .incydr import from_alert, from_file_event
from .model import (
    SCHEMA_ID,
    Actor,
    Destination,
    DestinationKind,
    Device,
    FileInfo,
    ModelMovementEvent,
    Source,
    SourceKind,
    event_from_dict,
    event_schema,
    format_time,
    validate_event_dict,
)
from .webhook import WebhookMapping, mapping_from_dict

__all__ = [
    "SCHEMA_ID",
    "Actor",
    "Destination",
    "DestinationKind",
    "Device",
    "FileInfo",
    "ModelMovementEvent",
    "NormaliseOptions",
    "Source",
    "SourceKind",
    "WebhookMapping",
    "event_from_dict",
    "event_schema",
    "format_time",
    "mapping_from_dict",
    "normalise",
    "normalise_many",
    "recognise",
    "validate_event_dict",
]

CROWNGUARD = "crownguard"
INCYDR_FILE_EVENT = "incydr.file_event"
INCYDR_ALERT = "incydr.alert"
INCYDR_FILE_EVENTS = "incydr.file_events_response"
INCYDR_ALERTS = "incydr.alerts_response"
LIST = "list"
UNKNOWN = "unknown"


def recognise(raw: Any) -> str:
    """The shape of a payload (see the module docstring), or 'unknown'."""
    if isinstance(raw, list):
        return LIST
    if not isinstance(raw, Mapping):
        return UNKNOWN
    if raw.get("schema") == SCHEMA_ID or (
            isinstance(raw.get("actor"), Mapping) and isinstance(raw.get("file"), Mapping)
            and "destination" in raw):
        return CROWNGUARD
    if "@timestamp" in raw or ("event" in raw and "file" in raw and "user" in raw):
        return INCYDR_FILE_EVENT
    if "observations" in raw and ("actor" in raw or "ruleId" in raw):
        return INCYDR_ALERT
    if isinstance(raw.get("fileEvents"), list):
        return INCYDR_FILE_EVENTS
    if isinstance(raw.get("alerts"), list):
        return INCYDR_ALERTS
    return UNKNOWN


def normalise_many(raw: Any, mapping: WebhookMapping | None = None, *,
                   options: NormaliseOptions | None = None,
                   mappings: Iterable[WebhookMapping] = ()) -> list[ModelMovementEvent]:
    """Every event in a payload: one event, a list, an alert's files, a search response.

    `mapping` forces a webhook mapping; otherwise the shape is recognised, and a payload of
    unknown shape is tried against `mappings` whose `when` matches it.
    """
    opts = options or DEFAULT_OPTIONS
    if mapping is not None:
        if isinstance(raw, list):
            return [_trusted(mapping.apply(item, opts), opts) for item in raw]
        return [_trusted(mapping.apply(raw, opts), opts)]
    shape = recognise(raw)
    if shape == LIST:
        return [event for item in raw for event in normalise_many(item, options=opts,
                                                                   mappings=mappings)]
    if shape == CROWNGUARD:
        return [_trusted(event_from_dict(raw), opts)]
    if shape == INCYDR_FILE_EVENT:
        return [from_file_event(raw, opts)]
    if shape == INCYDR_ALERT:
        return from_alert(raw, opts)
    if shape == INCYDR_FILE_EVENTS:
        return [from_file_event(item, opts) for item in raw["fileEvents"]]
    if shape == INCYDR_ALERTS:
        return [event for alert in raw["alerts"] for event in from_alert(alert, opts)]
    for candidate in mappings:
        if candidate.when is not None and candidate.matches(raw):
            return [_trusted(candidate.apply(raw, opts), opts)]
    raise EventError.at("(event)", "unrecognised payload: not a crownguard event, an Incydr file "
                        "event or alert, and no webhook mapping's `when` matches it")


def _trusted(event: ModelMovementEvent, options: NormaliseOptions) -> ModelMovementEvent:
    """A destination the policy trusts (trusted or corporate domains) is trusted, whatever
    the sender said (the Incydr mapper applies the same rule as it reads the event)."""
    destination = event.destination
    if destination.trusted is not True and options.trusts(destination.domain, destination.url):
        destination.trusted = True  # a fresh event, not yet shared
    return event


def normalise(raw: Any, mapping: WebhookMapping | None = None, *,
              options: NormaliseOptions | None = None,
              mappings: Iterable[WebhookMapping] = ()) -> ModelMovementEvent:
    """Exactly one ModelMovementEvent from a payload (see normalise_many for lists)."""
    opts = options or DEFAULT_OPTIONS
    if mapping is None and isinstance(raw, Mapping) and "@timestamp" in raw:
        return from_file_event(raw, opts)  # the hot path: skip shape recognition
    events = normalise_many(raw, mapping, options=opts, mappings=mappings)
    if len(events) != 1:
        raise EventError.at("(event)", f"the payload holds {len(events)} events; use "
                            "normalise_many")
    return events[0]
