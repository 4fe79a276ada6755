"""Model-movement events: the normalised event, its schema, and reading what tools send.

    normalise(raw, mapping=None, options=None, sources=()) -> ModelMovementEvent
    normalise_many(raw, ...) -> list[ModelMovementEvent]     (alerts, lists, search responses)
    recognise(raw, sources=()) -> "crownguard" | "list" | a source's format | "unknown"

A raw payload is recognised by its shape: a normalised event (its `schema` marker or the
actor/file/destination objects), a list, or a payload one of the event `sources` recognises
(`EventSource`, registered by plugins through `crownguard_register_event_sources`: Incydr's
file events and alerts come from the incydr plugin; `host.event_sources.values()` are a
host's). Anything else needs a webhook mapping of the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ...errors import EventError
from .classify import DEFAULT_OPTIONS, NormaliseOptions
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

if TYPE_CHECKING:
    from ...sources import EventSource

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
LIST = "list"
UNKNOWN = "unknown"


def recognise(raw: Any, sources: Iterable[EventSource] = ()) -> str:
    """The shape of a payload (see the module docstring), or 'unknown'."""
    if isinstance(raw, list):
        return LIST
    if not isinstance(raw, Mapping):
        return UNKNOWN
    if _normalised(raw):
        return CROWNGUARD
    for source in sources:
        shape = source.recognise(raw)
        if shape:
            return shape
    return UNKNOWN


def _normalised(raw: Mapping[str, Any]) -> bool:
    """Whether a mapping is a normalised event: its `schema` marker or its three objects."""
    if raw.get("schema") == SCHEMA_ID:
        return True
    # A vendor payload has no `actor` object mostly: asked first, before any ABC check.
    actor = raw.get("actor")
    return actor is not None and "destination" in raw and isinstance(actor, Mapping) \
        and isinstance(raw.get("file"), Mapping)


def normalise_many(raw: Any, mapping: WebhookMapping | None = None, *,
                   options: NormaliseOptions | None = None,
                   mappings: Iterable[WebhookMapping] = (),
                   sources: Iterable[EventSource] = ()) -> list[ModelMovementEvent]:
    """Every event in a payload: one event, a list, an alert's files, a search response.

    `mapping` forces a webhook mapping; otherwise the shape is recognised (by the event
    `sources` for the tools' own payloads), and a payload of unknown shape is tried against
    `mappings` whose `when` matches it.
    """
    opts = options or DEFAULT_OPTIONS
    if mapping is not None:
        if isinstance(raw, list):
            return [_trusted(mapping.apply(item, opts), opts) for item in raw]
        return [_trusted(mapping.apply(raw, opts), opts)]
    if isinstance(raw, list):
        sources = tuple(sources)
        return [event for item in raw for event in normalise_many(item, options=opts,
                                                                   mappings=mappings,
                                                                   sources=sources)]
    if isinstance(raw, Mapping):
        if _normalised(raw):
            return [_trusted(event_from_dict(raw), opts)]
        for source in sources:
            if source.recognise(raw):
                events: list[ModelMovementEvent] = source.map(raw, opts)
                return events
    for candidate in mappings:
        if candidate.when is not None and candidate.matches(raw):
            return [_trusted(candidate.apply(raw, opts), opts)]
    described = [source.description for source in sources if source.description]
    raise EventError.at("(event)", "unrecognised payload: not "
                        + ", ".join(["a crownguard event", *described])
                        + ", and no webhook mapping's `when` matches it")


def _trusted(event: ModelMovementEvent, options: NormaliseOptions) -> ModelMovementEvent:
    """A destination the policy trusts (trusted or corporate domains) is trusted, whatever
    the sender said (an event source's mapper applies the same rule as it reads the event)."""
    destination = event.destination
    if destination.trusted is not True and options.trusts(destination.domain, destination.url):
        destination.trusted = True  # a fresh event, not yet shared
    return event


def normalise(raw: Any, mapping: WebhookMapping | None = None, *,
              options: NormaliseOptions | None = None,
              mappings: Iterable[WebhookMapping] = (),
              sources: Iterable[EventSource] = ()) -> ModelMovementEvent:
    """Exactly one ModelMovementEvent from a payload (see normalise_many for lists)."""
    # No `actor` and no marker: not a normalised event, known without calling _normalised.
    if mapping is None and raw.__class__ is dict and (
            (raw.get("actor") is None and raw.get("schema") != SCHEMA_ID)
            or not _normalised(raw)):
        # The hot path of a feed, normalise_many's own branch without its other cases: the
        # first event source that recognises the payload reads it.
        if sources.__class__ is not tuple:
            sources = tuple(sources)
        for source in sources:
            if source.recognise(raw):
                events: list[ModelMovementEvent] = source.map(raw, options or DEFAULT_OPTIONS)
                break
        else:
            events = normalise_many(raw, options=options, mappings=mappings,
                                    sources=sources)
    else:
        events = normalise_many(raw, mapping, options=options, mappings=mappings,
                                sources=sources)
    if len(events) != 1:
        raise EventError.at("(event)", f"the payload holds {len(events)} events; use "
                            "normalise_many")
    return events[0]
