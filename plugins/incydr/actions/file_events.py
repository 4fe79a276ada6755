"""incydr.search_file_events: Forensic Search by person, hash, file name and time window."""

from __future__ import annotations

from typing import Any

from crownguard.engine import VENDOR_RETRY, ActionContext, InputError, action

from ..client import IncydrClient
from ..query import QueryInputError, file_event_query
from .schemas import OBJECTS, PAGED_OUTPUT, TIMESTAMP, USER, WITHIN_LAST

MAX_EVENTS = 10_000


@action(
    "incydr.search_file_events",
    connection="incydr",
    side_effect=False,
    undo=None,
    retry=VENDOR_RETRY,
    input_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "user": USER,
            "sha256": {"type": "string", "pattern": "^[A-Fa-f0-9]{64}$"},
            "md5": {"type": "string", "pattern": "^[A-Fa-f0-9]{32}$"},
            "file_name": {"type": "string", "minLength": 1, "maxLength": 512,
                          "description": "File name; * is a wildcard (*.safetensors)."},
            "event_actions": {"type": "array", "minItems": 1, "uniqueItems": True,
                              "items": {"type": "string", "minLength": 1},
                              "description": "event.action values, e.g. "
                                             "removable-media-created, sync-app-created."},
            "destination_categories": {"type": "array", "minItems": 1, "uniqueItems": True,
                                       "items": {"type": "string", "minLength": 1},
                                       "description": "destination.category values, e.g. "
                                                      "Cloud Storage, AI Tools."},
            "start_time": TIMESTAMP,
            "end_time": TIMESTAMP,
            "within_last": WITHIN_LAST,
            "max_events": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS,
                           "default": 100},
            "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS,
                          "default": 100},
        },
    },
    output_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["events", "returned", "total_count", "truncated", "pages", "problems"],
        "properties": {"events": OBJECTS, "problems": OBJECTS, **PAGED_OUTPUT},
    },
)
def search_file_events(ctx: ActionContext, inputs: dict[str, Any]) -> dict[str, Any]:
    """Search Incydr file events (Forensic Search) for a person, a file hash or a file name.

    Sends `POST /v2/file-events` with one filter group per criterion (all must match) and a time
    window (`start_time`/`end_time`, or `within_last`, default the last 90 days), newest first,
    and follows `nextPgToken` until `max_events`. The events come back in Incydr's v2 shape
    (`@timestamp`, `event.action`, `file.hash.sha256`, `destination.category`, `risk.score`...);
    `truncated` says more matched than were returned. Needs an API client allowed to read file
    events (Forensic Search).
    """
    page_size = min(int(inputs.get("page_size", 100)), int(inputs.get("max_events", 100)))
    try:
        query = file_event_query(inputs, page_size)
    except QueryInputError as exc:
        raise InputError(f"incydr.search_file_events: {exc}") from None
    page = ctx.client(IncydrClient).search_file_events(query, int(inputs.get("max_events", 100)))
    return {"events": page.items, "returned": len(page.items), "total_count": page.total,
            "truncated": page.truncated, "pages": page.pages, "problems": page.problems}
