"""The service's Incydr pollers (`service.incydr_poll`).

`incydr`: the file events that Forensic Search holds from a time on, oldest first, a page at a
time (`pgToken`/`nextPgToken`). `incydr_alerts` (`alerts: true`): the file events of sessions
that have alerts (Sessions are what the SDK now offers in place of the deprecated alerts
API), for every session updated from that time on.

Each page is handed over as `{"id", "at", "raw"}` items so the service can store a page and
move its cursor together; an event without an id or a time still goes in the page (with
None), and an item that could not be read carries a `problem`, so the service can set it
aside rather than lose it unnoticed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from crownguard.engine import ActionContext, BadResponse, NotFoundError

from .client import MAX_SESSION_PAGE_SIZE, IncydrClient, _pairs

NAME = "incydr"
ALERTS_NAME = "incydr_alerts"
CONNECTION = "incydr"
OPERATION = "poll file events"
SESSIONS_OPERATION = "poll alerting sessions"
# `on_or_after` filters on a session's beginTime, and a session goes on gaining events after
# it began: sessions that began up to this long before the cursor are listed, and those
# updated since the cursor are read. A session longer than this is not caught (docs).
SESSION_LOOKBACK = timedelta(hours=24)
# Sessions whose order changes while they are listed (one gains events and moves to the end)
# can push an unread one onto a page already read: the listing is read again, at most this
# many times, until one pass sees no session move.
MAX_PASSES = 3


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


def _client(connections: Any) -> IncydrClient:
    ctx = ActionContext(run_id="incydr-poll", step_id="poll", attempt=1,
                        idempotency_key="incydr-poll", connections=connections)
    return ctx.client(IncydrClient)


def poll(connections: Any, since: datetime, page_size: int = 500) -> Iterator[list[dict[str, Any]]]:
    """The pages of file events from `since` on; stops at the first short or empty page."""
    client = _client(connections)
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


# --- alerting sessions -------------------------------------------------------------------------


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _epoch_ms(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def sessions_query(since: datetime) -> dict[str, Any]:
    """The listing of alerting sessions that may have changed since `since`, by end time,
    oldest first (the page a restart goes on from is known by its latest end time)."""
    return {"on_or_after": _ms(since - SESSION_LOOKBACK), "has_alerts": "true",
            "order_by": "end_time", "sort_direction": "asc"}


def _set_aside(session: Any, why: str, key: str | None, since_ms: int,
               done: dict[str, int]) -> list[dict[str, Any]]:
    """A session that cannot be read, as one problem item; none when this version of it was
    already set aside (it stays listed for a day: it is not set aside, nor logged, again)."""
    memo = "unreadable:" + hashlib.sha256(json.dumps(session, sort_keys=True, default=str)
                                          .encode()).hexdigest()
    if memo in done:
        return []
    done[memo] = since_ms + int(SESSION_LOOKBACK.total_seconds() * 1000)
    return [{"id": key, "at": None, "raw": {"session": session, "fileEvent": None},
             "problem": why}]


def _session_items(client: IncydrClient, session: Any, since_ms: int,
                   done: dict[str, int]) -> list[dict[str, Any]]:
    """One listed session's file events as items (none when it has not changed since
    `since_ms` or was read at this version); one problem item when it cannot be read."""
    if not isinstance(session, Mapping):
        return _set_aside(session, "the session is not a JSON object", None, since_ms, done)
    session_id = session.get("sessionId")
    if not isinstance(session_id, str) or not session_id:
        return _set_aside(session, "the session has no sessionId", None, since_ms, done)
    end, updated = _epoch_ms(session.get("endTime")), _epoch_ms(session.get("lastUpdated"))
    if end is None or updated is None:
        return _set_aside(session, "endTime and lastUpdated must be epoch milliseconds",
                          f"{session_id}@{session.get('lastUpdated')}", since_ms, done)
    if max(end, updated) < since_ms or done.get(session_id) == updated:
        return []
    done[session_id] = updated
    try:
        events = client.session_file_events(session_id)
    except (NotFoundError, BadResponse) as exc:  # this session only: the others go on
        return _set_aside(session, f"its file events could not be read: {exc}",
                          f"{session_id}@{updated}", since_ms, done)
    at = _iso(datetime.fromtimestamp(end / 1000, UTC))
    items = []
    for event in events:
        item = _item(event)
        items.append({"id": f"{session_id}:{item['id']}" if item["id"] else None,
                      "at": at, "raw": {"session": session, "fileEvent": event}})
    return items


class SessionPoll:
    """`poll(connections, since, page_size)` for alerting sessions: a page of items per page
    of sessions changed since `since`, each item one file event of a session, as
    `{"session", "fileEvent"}`. It remembers the session versions (id, lastUpdated) whose
    events the service stored, and those it set aside (a page counts once the next one is
    asked for), so a session listed again is not asked for its events, nor set aside,
    again until it changes. A new process starts with none: it reads them again, and the
    service knows their events by id."""

    def __init__(self) -> None:
        self.stored: dict[str, int] = {}

    def __call__(self, connections: Any, since: datetime,
                 page_size: int = MAX_SESSION_PAGE_SIZE) -> Iterator[list[dict[str, Any]]]:
        client = _client(connections)
        size = max(1, min(page_size, MAX_SESSION_PAGE_SIZE))
        params = sessions_query(since)
        since_ms = _ms(since)
        self.stored = {k: v for k, v in self.stored.items() if v >= since_ms}
        done = dict(self.stored)  # this poll's reads too: a second pass skips them
        for _ in range(MAX_PASSES):
            moved = False
            seen: set[str] = set()
            for number in range(10_000):
                body = client.request_json(
                    "GET", "/v1/sessions", operation=SESSIONS_OPERATION,
                    params=[*_pairs(params), ("page_number", number), ("page_size", size)])
                sessions = body.get("items") if isinstance(body, dict) else None
                if not isinstance(sessions, list):
                    raise BadResponse("expected {'items': [...]} from GET /v1/sessions",
                                      vendor="incydr", operation=SESSIONS_OPERATION)
                page: list[dict[str, Any]] = []
                before = dict(done)
                for session in sessions:
                    session_id = session.get("sessionId") if isinstance(session, Mapping) \
                        else None
                    if isinstance(session_id, str):
                        moved = moved or session_id in seen
                        seen.add(session_id)
                    page.extend(_session_items(client, session, since_ms, done))
                if page:
                    yield page
                # Asked for more: the page is stored.
                self.stored.update({k: v for k, v in done.items() if before.get(k) != v})
                total = body.get("totalCount")
                if len(sessions) < size or (isinstance(total, int) and
                                            (number + 1) * size >= total):
                    break
            if not moved:
                return
        raise BadResponse(f"the alerting sessions kept changing while they were listed "
                          f"({MAX_PASSES} passes); the next poll reads them again",
                          vendor="incydr", operation=SESSIONS_OPERATION)
