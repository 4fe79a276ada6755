"""EventSource: how a plugin teaches crownguard to read one tool's raw event payloads.

The core knows only that a source recognises its payloads and maps them to events; what an
event is belongs to the wing that reads them (the triage wing's ModelMovementEvent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EventSource:
    """A named reader of one tool's raw payloads, registered through
    `crownguard_register_event_sources`.

    `recognise(raw)` names the payload's format (such as "incydr.file_event") when this source
    reads it, else None. `map(raw, options)` gives every event a recognised payload holds (a
    list: an alert or a search answer holds several); `options` are the policy's normalise
    options. `split(raw)`, for a batch payload, gives its parts, each with a label for error
    messages ("fileEvents item 2"), or None when the payload is not a batch. `description`
    names what the source reads in the error for a payload no source recognises ("an Incydr
    file event or alert")."""

    name: str
    recognise: Callable[[Any], str | None]
    map: Callable[[Any, Any], list[Any]]
    description: str = ""
    split: Callable[[Any], list[tuple[str, Any]] | None] | None = None
    plugin: str = ""


def payload_items(payload: Any, sources: Iterable[EventSource]) -> list[tuple[str | None, Any]]:
    """The parts of a payload that are reported by label: a list's items (`item 1`...), the
    parts an event source splits a batch into (an Incydr search answer's file events), else
    the payload itself, unlabelled."""
    if isinstance(payload, list):
        return [(f"item {n}", item) for n, item in enumerate(payload, 1)]
    for source in sources:
        if source.recognise(payload):
            parts = source.split(payload) if source.split is not None else None
            if parts is not None:
                return list(parts)
            break
    return [(None, payload)]
