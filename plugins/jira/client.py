"""JiraClient: Jira Cloud platform REST API v3 over the engine's HTTP layer.

Authentication is HTTP Basic with an Atlassian account e-mail and API token (or a bearer token
for api.atlassian.com). Searches use the enhanced JQL endpoint (`POST /rest/api/3/search/jql`),
which pages with `nextPageToken`; comment lists page with `startAt`/`maxResults`/`total`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    BasicAuth,
    ConfigError,
    HeaderAuth,
    VendorClient,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGES = 1000


class JiraClient(VendorClient):
    """One Jira Cloud site, as configured by the `jira` connection."""

    vendor = "jira"
    connection_type = "jira"
    request_id_headers = ("X-AREQUESTID", "Atl-Traceid", "X-Request-Id")

    def make_auth(self) -> Auth:
        settings = self.settings
        if settings.get("email") and settings.get("api_token") is not None:
            return BasicAuth(str(settings["email"]), settings["api_token"])
        if settings.get("token"):
            return HeaderAuth(settings["token"], scheme="Bearer")
        raise ConfigError(f"connection '{self.connection.name}' needs email and api_token "
                          "(or token)")

    def error_message(self, body: Any, response: requests.Response) -> str:
        """Jira errors are `{"errorMessages": [...], "errors": {field: message}}`; a 401 may be
        `{"message", "status-code"}` or plain text."""
        if isinstance(body, dict) and ("errorMessages" in body or "errors" in body):
            parts = [str(m) for m in body.get("errorMessages") or [] if m]
            errors = body.get("errors")
            if isinstance(errors, dict):
                parts += [f"{field}: {message}" for field, message in errors.items()]
            if parts:
                return "; ".join(parts)
        return super().error_message(body, response)

    @property
    def page_size(self) -> int:
        return int(self.settings.get("page_size") or DEFAULT_PAGE_SIZE)

    def browse_url(self, key: str) -> str:
        return self.url(f"browse/{quote(key, safe='')}")

    @staticmethod
    def issue_path(issue: str, *rest: str) -> str:
        return "/".join(["rest/api/3/issue", quote(issue, safe=""), *rest])

    def _object(self, response: requests.Response, operation: str) -> dict[str, Any]:
        body = self.parse_json(response, operation)
        if not isinstance(body, dict):
            raise BadResponse("the answer is not a JSON object", vendor=self.vendor,
                              operation=operation, status=response.status_code)
        return body

    def call(self, method: str, path: str, *, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One request whose answer is a JSON object (an empty 204 gives {})."""
        response = self.request(method, path, operation=operation, **kwargs)
        if response.status_code == 204 or not response.content:
            return {}
        return self._object(response, operation)

    # searches ----------------------------------------------------------------------------------

    def search(self, jql: str, *, operation: str, fields: list[str] | None = None,
               properties: list[str] | None = None,
               limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Issues matching `jql` from the enhanced search, following nextPageToken."""
        body: dict[str, Any] = {"jql": jql, "fields": fields or ["summary", "status", "labels"],
                                "maxResults": self.page_size if limit is None
                                else max(1, min(self.page_size, limit))}
        if properties:
            body["properties"] = properties
        yielded = 0
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = self.call("POST", "rest/api/3/search/jql", operation=operation,
                             json_body=body)
            issues = page.get("issues")
            if not isinstance(issues, list):
                raise BadResponse("the search answer has no 'issues' list", vendor=self.vendor,
                                  operation=operation)
            for issue in issues:
                if limit is not None and yielded >= limit:
                    return
                if isinstance(issue, dict):
                    yielded += 1
                    yield issue
            token = page.get("nextPageToken")
            if page.get("isLast", not token) or not token or not issues:
                return
            if token in seen:
                raise BadResponse("the search sent the same nextPageToken twice",
                                  vendor=self.vendor, operation=operation)
            seen.add(token)
            body = {**body, "nextPageToken": token}
        raise BadResponse(f"more than {MAX_PAGES} pages", vendor=self.vendor, operation=operation)

    def comments(self, issue: str, *, operation: str) -> Iterator[dict[str, Any]]:
        """Every comment of an issue, oldest first, following startAt/maxResults/total."""
        start = 0
        for _ in range(MAX_PAGES):
            page = self.call("GET", self.issue_path(issue, "comment"), operation=operation,
                             params={"startAt": start, "maxResults": self.page_size,
                                     "orderBy": "created"})
            comments = page.get("comments")
            if not isinstance(comments, list):
                raise BadResponse("the answer has no 'comments' list", vendor=self.vendor,
                                  operation=operation)
            yield from (c for c in comments if isinstance(c, dict))
            start += len(comments)
            total = page.get("total")
            if not comments or not isinstance(total, int) or start >= total:
                return
        raise BadResponse(f"more than {MAX_PAGES} pages", vendor=self.vendor, operation=operation)

    def comment_properties(self, ids: list[str], *, operation: str) -> dict[str, dict[str, Any]]:
        """Comment id -> {property key: value}, from `POST /rest/api/3/comment/list` (at most
        1000 ids a call)."""
        found: dict[str, dict[str, Any]] = {}
        for at in range(0, len(ids), 1000):
            chunk = [int(i) if i.isdigit() else i for i in ids[at:at + 1000]]
            page = self.call("POST", "rest/api/3/comment/list", operation=operation,
                             params={"expand": "properties"}, json_body={"ids": chunk})
            values = page.get("values")
            if not isinstance(values, list):
                raise BadResponse("the answer has no 'values' list", vendor=self.vendor,
                                  operation=operation)
            for comment in values:
                if isinstance(comment, dict):
                    found[str(comment.get("id"))] = {
                        str(p.get("key")): p.get("value")
                        for p in comment.get("properties") or [] if isinstance(p, dict)}
        return found
