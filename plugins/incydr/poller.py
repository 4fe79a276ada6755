"""The service's Incydr poller (`service.incydr_poll`): the file events that Forensic Search
holds from a time on, oldest first, a page at a time (`pgToken`/`nextPgToken`).

Each page is handed over as `{"id", "at", "raw"}` items so the service can store a page and
move its cursor together; an event without an id or a time still goes in the page (with
None), so the service can set it aside rather than lose it unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from crownguard.engine import ActionContext, BadResponse

from .client import IncydrClient

NAME = "incydr"
CONNECTION = "incydr"
OPERATION = "poll file events"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def query(since: datetime, page_size: int) -> dict[str, Any]:
    """Every file event at or after `since`, oldest first (event id breaks ties)."""
    return {"groupClause": "AND", "groups": [{"filterClause": "AND", "filters": [
        {"term": "@timestamp", "operator": "ON_OR_AFTER", "value": _iso(since)}]}],
        "pgNum": 1, "pgSize": page_size, "srtDir": "asc", "srtKey": "@timestamp"}


def _item(raw: Any) -> dict[str, Any]:
    event = raw.get("event") if isinstance(raw, dict) else None
    event_id = event.get("id") if isinstance(event, dict) else None
    at = raw.get("@timestamp") if isinstance(raw, dict) else None
    return {"id": str(event_id) if isinstance(event_id, str | int) and event_id != "" else None,
            "at": at if isinstance(at, str) and at else None, "raw": raw}


def poll(connections: Any, since: datetime, page_size: int = 500) -> Iterator[list[dict[str, Any]]]:
    """The pages of file events from `since` on; stops at the first short or empty page."""
    ctx = ActionContext(run_id="incydr-poll", step_id="poll", attempt=1,
                        idempotency_key="incydr-poll", connections=connections)
    client = ctx.client(IncydrClient)
    body = query(since, page_size)
    token, seen = "", set()
    while True:
        answer = client.request_json("POST", "/v2/file-events", operation=OPERATION,
                                     json_body={**body, "pgToken": token})
        if not isinstance(answer, dict):
            raise BadResponse("expected a JSON object from Incydr", vendor="incydr",
                              operation=OPERATION)
        events = answer.get("fileEvents") or []
        if not isinstance(events, list):
            raise BadResponse("'fileEvents' is not a list", vendor="incydr", operation=OPERATION)
        if events:
            yield [_item(raw) for raw in events]
        token = answer.get("nextPgToken") or ""
        if not token or len(events) < page_size:
            return
        if token in seen:
            raise BadResponse("Forensic Search returned the same nextPgToken twice",
                              vendor="incydr", operation=OPERATION)
        seen.add(token)
