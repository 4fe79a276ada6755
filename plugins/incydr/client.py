"""IncydrClient: one client for the Code42 Incydr API over the engine's shared HTTP layer.

Auth is an Incydr API client: `POST /v1/oauth` with HTTP Basic (client id and secret) returns a
bearer token that lives 15 minutes; the engine caches it until shortly before expiry and
refreshes it once after a 401. Paging follows each API: file events by cursor
(`pgToken`/`nextPgToken`), sessions by `page_number` (from 0) and `page_size` (at most 50),
watchlists by `page` (from 1) with `pageSize`, watchlist members with `page_size`. A file
is downloaded by SHA-256 (`GET /v1/files/get-file-by-sha256/{sha256}`, octet-stream), streamed
and closed once the bytes asked for are in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    NotFoundError,
    OAuth2ClientCredentials,
    VendorClient,
    read_head,
)

MAX_SESSION_PAGE_SIZE = 50
WATCHLIST_PAGE_SIZE = 100
ACTOR_ID = re.compile(r"^\d{6,}$")


@dataclass
class Page:
    """What a paged read collected: the items, the vendor's total and how it went."""

    items: list[dict[str, Any]] = field(default_factory=list)
    total: int | None = None
    pages: int = 0
    truncated: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)


class IncydrClient(VendorClient):
    """The Incydr API: Forensic Search, sessions, alerts, actors and watchlists."""

    vendor = "incydr"
    connection_type = "incydr"

    # engine hooks ---------------------------------------------------------------------------

    def make_auth(self) -> Auth:
        return OAuth2ClientCredentials(self.token_url, str(self.settings["client_id"]),
                                       self.settings["client_secret"], style="basic")

    @property
    def token_url(self) -> str:
        return str(self.settings.get("token_url") or self.url("/v1/oauth"))

    def error_message(self, body: Any, response: requests.Response) -> str:
        """Incydr's error bodies: Forensic Search `problems`, or a status `message`."""
        if isinstance(body, dict) and isinstance(body.get("problems"), list) and body["problems"]:
            return "invalid query: " + "; ".join(_describe_problem(p) for p in body["problems"])
        return super().error_message(body, response)

    def _object(self, body: Any, operation: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadResponse("expected a JSON object from Incydr", vendor=self.vendor,
                              operation=operation)
        return body

    def _list(self, value: Any, operation: str, what: str) -> list[dict[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise BadResponse(f"'{what}' is not a list of objects", vendor=self.vendor,
                              operation=operation)
        return value

    # file events ----------------------------------------------------------------------------

    def search_file_events(self, query: dict[str, Any], max_events: int) -> Page:
        """Run a Forensic Search query, following nextPgToken until max_events."""
        operation = "search file events"
        page = Page()
        token = ""
        seen: set[str] = set()
        while True:
            body = self._object(self.request_json("POST", "/v2/file-events", operation=operation,
                                                  json_body={**query, "pgToken": token}),
                                operation)
            events = self._list(body.get("fileEvents"), operation, "fileEvents")
            page.pages += 1
            page.total = _total(body, page.total)
            page.problems.extend(self._list(body.get("problems"), operation, "problems"))
            page.items.extend(events)
            token = body.get("nextPgToken") or ""
            # Incydr returns a token after every non-empty page; a short page is the last.
            last = not token or len(events) < int(query.get("pgSize") or 0)
            if len(page.items) >= max_events:
                page.truncated = (page.total > max_events if page.total is not None
                                  else len(page.items) > max_events or not last)
                page.items = page.items[:max_events]
                return page
            if last:
                return page
            if token in seen:
                raise BadResponse("Forensic Search returned the same nextPgToken twice",
                                  vendor=self.vendor, operation=operation)
            seen.add(token)

    # files ----------------------------------------------------------------------------------

    def file_head(self, sha256: str, limit: int) -> bytes:
        """The first `limit` bytes of the file with this SHA-256 (all of it when shorter).

        Streamed: the download is closed as soon as `limit` bytes are in, so a 10 GB file costs
        what its head does. NotFoundError when Incydr holds no file with this hash; like
        `request`, a 401 refreshes the token once and asks again."""
        operation = "get file by sha256"
        url = self.url(f"/v1/files/get-file-by-sha256/{_seg(sha256)}")
        refreshed = False
        while True:
            headers = {"Accept": "application/octet-stream"}
            self.auth.apply(headers, self)
            with self.stream("GET", url, operation=operation, headers=headers) as body:
                response = body.response
                if response.status_code == 401 and not refreshed and self.auth.invalidate():
                    refreshed = True
                    continue
                if not 200 <= response.status_code < 300:
                    raise self.error_for(response, operation)
                return read_head(body, limit)


    # sessions and alerts --------------------------------------------------------------------

    def get_session(self, session_id: str) -> dict[str, Any]:
        operation = "get session"
        return self._object(self.request_json("GET", f"/v1/sessions/{_seg(session_id)}",
                                              operation=operation), operation)

    def session_file_events(self, session_id: str) -> list[dict[str, Any]]:
        operation = "get session events"
        body = self._object(self.request_json("GET", f"/v1/sessions/{_seg(session_id)}/events",
                                              operation=operation), operation)
        result = body.get("queryResult") or {}
        return self._list(result.get("fileEvents") if isinstance(result, dict) else result,
                          operation, "queryResult.fileEvents")

    def search_sessions(self, params: dict[str, Any], max_sessions: int,
                        page_size: int = MAX_SESSION_PAGE_SIZE) -> Page:
        """List sessions page by page (page_number from 0) until max_sessions or the end."""
        operation = "list sessions"
        page = Page()
        size = max(1, min(page_size, MAX_SESSION_PAGE_SIZE))
        for number in range(0, 10_000):
            body = self._object(self.request_json(
                "GET", "/v1/sessions", operation=operation,
                params=[*_pairs(params), ("page_number", number), ("page_size", size)]),
                operation)
            items = self._list(body.get("items"), operation, "items")
            page.pages += 1
            page.total = _total(body, page.total)
            page.items.extend(items)
            if len(page.items) >= max_sessions:
                page.truncated = len(page.items) > max_sessions or (
                    page.total is not None and page.total > max_sessions)
                page.items = page.items[:max_sessions]
                break
            if len(items) < size or (page.total is not None and len(page.items) >= page.total):
                break
        return page

    def change_session_state(self, session_id: str, state: str) -> None:
        self.request("POST", "/v1/sessions/change-state", operation="change session state",
                     json_body={"ids": [session_id], "newState": state})

    def add_session_note(self, session_id: str, content: str) -> None:
        self.request("POST", f"/v1/sessions/{_seg(session_id)}/add-note",
                     operation="add session note", json_body={"noteContent": content})

    def get_alert(self, alert_id: str) -> dict[str, Any]:
        operation = "get alert details"
        body = self._object(self.request_json("POST", "/v1/alerts/query-details",
                                              operation=operation,
                                              json_body={"alertIds": [alert_id]}), operation)
        alerts = self._list(body.get("alerts"), operation, "alerts")
        for alert in alerts:
            if alert.get("id") == alert_id:
                return alert
        raise NotFoundError(f"no alert with id '{alert_id}'", vendor=self.vendor,
                            operation=operation, status=None)

    # actors ---------------------------------------------------------------------------------

    def find_actor(self, user: str) -> dict[str, Any]:
        """The actor for an e-mail/username (its parent actor) or an actor id."""
        operation = "look up actor"
        path = (f"/v1/actors/actor/id/{_seg(user)}" if ACTOR_ID.match(user)
                else f"/v1/actors/actor/name/{_seg(user)}/parent")
        try:
            body = self.request_json("GET", path, operation=operation)
        except NotFoundError as exc:
            raise NotFoundError(f"no Incydr actor '{user}'", vendor=self.vendor,
                                operation=operation, status=exc.status,
                                request_id=exc.request_id) from None
        actor = self._object(body, operation)
        if not actor.get("actorId"):
            raise BadResponse("the actor has no actorId", vendor=self.vendor, operation=operation)
        return actor

    def update_actor(self, actor_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        operation = "update actor"
        return self._object(self.request_json("PATCH", f"/v1/actors/actor/id/{_seg(actor_id)}",
                                              operation=operation, json_body=changes),
                            operation)

    # watchlists -----------------------------------------------------------------------------

    def watchlists(self, actor_id: str | None = None) -> list[dict[str, Any]]:
        """Every watchlist, or those the actor is a member of."""
        operation = "list watchlists"
        params: dict[str, Any] = {"pageSize": WATCHLIST_PAGE_SIZE}
        if actor_id:
            params["actorId"] = actor_id
        return list(self._pages(operation, "/v2/watchlists", "watchlists", params,
                                "pageSize", WATCHLIST_PAGE_SIZE))

    def watchlist_by_type(self, list_type: str) -> dict[str, Any]:
        for watchlist in self.watchlists():
            if watchlist.get("listType") == list_type:
                return watchlist
        raise NotFoundError(f"this tenant has no {list_type} watchlist (create it in the "
                            "Incydr console first)", vendor=self.vendor,
                            operation="list watchlists")

    def watchlist_members(self, watchlist_id: str, max_members: int,
                          page_size: int = WATCHLIST_PAGE_SIZE) -> Page:
        operation = "list watchlist members"
        page = Page()
        for member in self._pages(operation, f"/v2/watchlists/{_seg(watchlist_id)}/members",
                                  "watchlistMembers", {}, "page_size", page_size, page):
            if len(page.items) >= max_members:
                page.truncated = True
                break
            page.items.append(member)
        return page

    def is_included(self, watchlist_id: str, actor_id: str) -> bool:
        response = self.request(
            "GET", f"/v2/watchlists/{_seg(watchlist_id)}/included-actors/{_seg(actor_id)}",
            operation="check watchlist membership", ok=(404,))
        return response.status_code != 404

    def include_actor(self, watchlist_id: str, actor_id: str) -> None:
        self.request("POST", f"/v2/watchlists/{_seg(watchlist_id)}/included-actors/add",
                     operation="add actor to watchlist",
                     json_body={"actorIds": [actor_id], "watchlistId": watchlist_id})

    def remove_actor(self, watchlist_id: str, actor_id: str) -> None:
        self.request("POST", f"/v2/watchlists/{_seg(watchlist_id)}/included-actors/delete",
                     operation="remove actor from watchlist",
                     json_body={"actorIds": [actor_id], "watchlistId": watchlist_id})

    def _pages(self, operation: str, path: str, key: str, params: dict[str, Any],
               size_param: str, size: int, page: Page | None = None
               ) -> Iterator[dict[str, Any]]:
        """Items of a `page` (from 1) paged list until a short page or the total."""
        seen = 0
        for number in range(1, 10_000):
            body = self._object(self.request_json(
                "GET", path, operation=operation,
                params={**params, "page": number, size_param: size}), operation)
            items = self._list(body.get(key), operation, key)
            total = _total(body, None)
            if page is not None:
                page.pages, page.total = page.pages + 1, total
            yield from items
            seen += len(items)
            if len(items) < size or (total is not None and seen >= total):
                return


def _seg(value: str) -> str:
    """A path segment, escaped (e-mail addresses keep their @)."""
    return quote(str(value), safe="@")


def _pairs(params: dict[str, Any]) -> list[tuple[str, Any]]:
    """Query pairs with lists repeated (`state=OPEN&state=IN_PROGRESS`), Nones dropped."""
    pairs: list[tuple[str, Any]] = []
    for key, value in params.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    return pairs


def _total(body: dict[str, Any], current: int | None) -> int | None:
    total = body.get("totalCount")
    return total if isinstance(total, int) and not isinstance(total, bool) else current


def _describe_problem(problem: Any) -> str:
    if not isinstance(problem, dict):
        return str(problem)
    text = str(problem.get("description") or problem.get("type") or "problem")
    bad = problem.get("badFilter")
    if isinstance(bad, dict) and bad.get("term"):
        text += f" (term {bad['term']})"
    return text

