"""Forensic Search: `POST /v2/file-events` with filter groups and pgToken/nextPgToken paging."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import IncydrMockBase, iso_ms
from .search import QueryProblem, page_of, parse_time, query_matcher, sort_key


class FileEventRoutes(IncydrMockBase):
    """File event search over the mock tenant's events."""

    @route("POST", "/v2/file-events")
    def search_file_events(self, request: Request) -> Any:
        caller = self.caller(request, "file-events:read")
        if isinstance(caller, Response):
            return caller
        body = self.json_body(request)
        if isinstance(body, Response):
            return body
        try:
            return self.run_query(body)
        except QueryProblem as problem:
            return self.json_response({"fileEvents": None, "nextPgToken": None,
                                       "problems": [problem.problem], "totalCount": None}, 400)

    def run_query(self, query: dict[str, Any]) -> dict[str, Any]:
        matches = query_matcher(query, self.clock())
        found = [e for e in self.file_events if matches(e)]
        direction = str(query.get("srtDir") or "asc").lower()
        if direction not in ("asc", "desc"):
            raise QueryProblem("srtDir must be asc or desc", None, "INVALID_SORT")
        found.sort(key=sort_key(str(query.get("srtKey") or "event.id")),
                   reverse=direction == "desc")
        page, next_token = page_of(found, query)
        return {"fileEvents": copy.deepcopy(page), "nextPgToken": next_token, "problems": None,
                "totalCount": len(found)}

    # helpers for tests and the demo ---------------------------------------------------------

    def add_file_event(self, event: dict[str, Any]) -> str:
        """Store one file event (Incydr's v2 shape); returns its event id."""
        with self.state_lock:
            self.file_events.append(copy.deepcopy(event))
        return str(event["event"]["id"])

    def add_file_events(self, count: int, *, like: str = "model-to-removable-media",
                        user: str | None = None, sha256: str | None = None) -> list[str]:
        """Add `count` copies of a shipped sample, one second apart, with new event ids."""
        template = self.samples[like]
        start = parse_time(template["@timestamp"])
        ids = []
        for index in range(count):
            event = copy.deepcopy(template)
            at = start + timedelta(seconds=index + 1)
            event["@timestamp"] = iso_ms(int(at.timestamp() * 1000))
            event["event"]["id"] = f"{template['event']['id'].rsplit('_', 1)[0]}_{9000 + index}"
            if user:
                event["user"]["email"] = user
            if sha256:
                event["file"]["hash"]["sha256"] = sha256
            ids.append(self.add_file_event(event))
        return ids
