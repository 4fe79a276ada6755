"""The Jira mock's core: site state, test helpers, authentication, rate limits, request ids,
permissions and how issues and comments are rendered. Route groups (issues, search, comments,
workflow) are mixins over this class; server.JiraMock sums them.

The mock as a whole is a stateful imitation of a Jira Cloud site's REST API v3.

What it does as Jira Cloud does: Basic auth with e-mail + API token (401 "Client must be
authenticated..." otherwise), project permissions (404 for issues one may not browse, 403 for
writes), issue create with field validation and ADF-only rich text, issue properties, labels,
the enhanced JQL search (`/rest/api/3/search/jql`, nextPageToken/isLast paging, bounded queries
only, a search index that can lag behind writes), comments paged with startAt/maxResults/total,
comment properties through `/rest/api/3/comment/list?expand=properties`, a To Do / In Progress /
Done workflow with transition ids, `{"errorMessages", "errors"}` error bodies, 429 with
Retry-After and the X-RateLimit-* headers, and an X-AREQUESTID on every answer.

Test helpers: `add_issue`, `set_permissions`, `throttle`, `lose_response`, `index_lag`,
`issues`, `comments`.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer

from .model import (
    ALL_PERMISSIONS,
    CATEGORIES,
    ISSUE_TYPES,
    PRIORITIES,
    STATUSES,
    UNAUTHENTICATED,
    errors,
    now,
)

INTEGRATION_EMAIL = "crownguard@example.com"
ACCOUNT_KEY = "jira.account"


class JiraMockBase(MockServer):
    """State and plumbing shared by every Jira route group."""

    vendor = "jira"

    def seed_issues(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: existing issues (for duplicate checks)."""
        for issue in items:
            self.add_issue(issue["summary"], labels=issue.get("labels"),
                           status=issue.get("status", "To Do"))

    def reset_state(self) -> None:
        self.api_token = "jira-" + secrets.token_urlsafe(16)
        self.accounts: dict[str, dict[str, Any]] = {INTEGRATION_EMAIL: {
            "api_token": self.api_token, "accountId": "5b10ac8d82e05b22cc7d4ef5",
            "displayName": "Crownguard Integration",
            "permissions": {"SEC": set(ALL_PERMISSIONS)}}}
        self.bearer_tokens: dict[str, str] = {}
        self.projects = {"SEC": {"id": "10000", "key": "SEC", "name": "Security"}}
        self.store: dict[str, dict[str, Any]] = {}  # issue key -> issue
        self.issue_ids = itertools.count(10001)
        self.issue_numbers = {key: itertools.count(1) for key in self.projects}
        self.comment_ids = itertools.count(10100)
        self.search_lag = 0
        self.rate_limited = 0
        self.retry_after = 1
        self.request_ids = itertools.count(1)

    # settings and helpers ----------------------------------------------------------------------

    def connection_settings(self, auth: str = "basic") -> dict[str, Any]:
        """`basic` (e-mail + API token) or `token` (an OAuth bearer token)."""
        settings: dict[str, Any] = {"base_url": self.base_url, "default_project": "SEC"}
        if auth == "basic":
            settings.update(email=INTEGRATION_EMAIL, api_token=self.api_token)
        elif auth == "token":
            token = "jira-bearer-" + secrets.token_urlsafe(16)
            with self.state_lock:
                self.bearer_tokens[token] = INTEGRATION_EMAIL
            settings["token"] = token
        else:
            raise ValueError(f"unknown auth '{auth}'")
        return settings

    def set_permissions(self, project: str, permissions: set[str],
                        email: str = INTEGRATION_EMAIL) -> None:
        with self.state_lock:
            self.accounts[email]["permissions"][project] = set(permissions)

    def throttle(self, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` REST calls get Jira's rate-limit answer (429)."""
        with self.state_lock:
            self.rate_limited, self.retry_after = times, retry_after

    def lose_response(self, method: str = "POST", path_prefix: str = "/rest/api/3/issue",
                      *, status: int = 503, times: int = 1, delay: float = 0.0) -> None:
        """Apply the next matching request, then lose its answer: send `status` instead, or
        (delay > 0) answer only after `delay` seconds, when the client has given up."""
        self.inject("lost_response", method=method, path=path_prefix + "*", status=status,
                    times=times, seconds=delay)

    def index_lag(self, searches: int) -> None:
        """Issues created from now on stay out of the next `searches` search answers, as they
        do while Jira's index catches up."""
        with self.state_lock:
            self.search_lag = searches

    def add_issue(self, summary: str, *, labels: list[str] | None = None,
                  status: str = "To Do", project: str = "SEC") -> str:
        """An existing issue (created by someone else); returns its key."""
        with self.state_lock:
            return self._create(project, {"summary": summary, "labels": labels or [],
                                          "issuetype": {"name": "Task"}}, {},
                                status=status, hidden=0)["key"]

    def issues(self) -> list[dict[str, Any]]:
        with self.state_lock:
            return [json.loads(json.dumps(i)) for i in self.store.values()]

    def comments(self, key: str) -> list[dict[str, Any]]:
        with self.state_lock:
            return [json.loads(json.dumps(c)) for c in self.store[key]["comments"]]

    def error_body(self, status: int) -> Any:
        messages = {400: "The request was invalid.", 401: UNAUTHENTICATED,
                    403: "You do not have permission to perform this operation.",
                    404: "Issue does not exist or you do not have permission to see it.",
                    429: "Rate limit exceeded."}
        return errors([messages.get(status, "Internal server error")])

    def not_found(self, request: Request) -> Response:
        return self.json_response(errors(["null for uri: " + request.url]), 404)

    # dispatch: authentication, rate limit, lost answers, request ids ---------------------------

    def before_route(self, request: Request) -> Response | None:
        if request.path.startswith("/rest/"):
            return self._authenticate(request) or self._rate_limit()
        return None

    def after_route(self, request: Request, response: Response) -> Response:
        response.headers["X-AREQUESTID"] = f"{next(self.request_ids)}x1x1"
        return response

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        email: str | None = None
        if header.startswith("Basic "):
            try:
                name, _, token = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, token = "", ""
            account = self.accounts.get(name)
            if account and secrets.compare_digest(account["api_token"], token):
                email = name
        elif header.startswith("Bearer "):
            email = self.bearer_tokens.get(header[7:])
        if email is None:
            return Response(UNAUTHENTICATED, status=401, content_type="text/plain",
                            headers={"WWW-Authenticate": 'Basic realm="protected-area"'})
        request.environ[ACCOUNT_KEY] = email
        return None

    def _rate_limit(self) -> Response | None:
        if self.rate_limited <= 0:
            return None
        self.rate_limited -= 1
        reset = (datetime.now(UTC) + timedelta(seconds=self.retry_after)).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        headers = {"Retry-After": str(self.retry_after), "X-RateLimit-Limit": "350",
                   "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset,
                   "X-RateLimit-NearLimit": "true", "RateLimit-Reason": "jira-burst-based"}
        return self.json_response(self.error_body(429), 429, headers)

    # permissions and rendering -----------------------------------------------------------------

    def _may(self, request: Request, project: str, permission: str) -> bool:
        account = self.accounts.get(request.environ.get(ACCOUNT_KEY, ""), {})
        return permission in account.get("permissions", {}).get(project, set())

    def _issue(self, request: Request, key_or_id: str) -> dict[str, Any] | None:
        issue = self.store.get(key_or_id) or next(
            (i for i in self.store.values() if i["id"] == key_or_id), None)
        if issue is None or not self._may(request, issue["project"], "BROWSE_PROJECTS"):
            return None
        return issue

    def _status(self, name: str) -> dict[str, Any]:
        status_id, category = STATUSES[name]
        return {"self": f"{self.base_url}/rest/api/3/status/{status_id}", "id": status_id,
                "name": name, "statusCategory": CATEGORIES[category]}

    def _fields(self, issue: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        fields = dict(issue["fields"])
        fields["status"] = self._status(issue["status"])
        fields["project"] = {"key": issue["project"], "id": self.projects[issue["project"]]["id"]}
        if wanted is None or "*all" in wanted or "*navigable" in wanted:
            return fields
        return {name: fields.get(name) for name in wanted if not name.startswith("-")}

    def _render(self, issue: dict[str, Any], wanted: list[str] | None,
                properties: list[str] | None = None) -> dict[str, Any]:
        out = {"id": issue["id"], "key": issue["key"],
               "self": f"{self.base_url}/rest/api/3/issue/{issue['id']}",
               "fields": self._fields(issue, wanted)}
        if properties:
            out["properties"] = {k: issue["properties"][k] for k in properties
                                 if k in issue["properties"]}
        return out

    def _comment(self, comment: dict[str, Any], with_properties: bool) -> dict[str, Any]:
        out = {k: v for k, v in comment.items() if k != "properties"}
        if with_properties:
            out["properties"] = [{"key": k, "value": v}
                                 for k, v in comment["properties"].items()]
        return out

    # writes the route groups share ------------------------------------------------------------

    def _create(self, project: str, fields: dict[str, Any], properties: dict[str, Any], *,
                status: str = "To Do", hidden: int | None = None) -> dict[str, Any]:
        issue_id = str(next(self.issue_ids))
        key = f"{project}-{next(self.issue_numbers[project])}"
        issue = {"id": issue_id, "key": key, "project": project, "status": status,
                 "created_order": int(issue_id), "hidden_searches":
                 self.search_lag if hidden is None else hidden,
                 "properties": dict(properties), "comments": [],
                 "fields": {"summary": fields["summary"], "labels": list(fields.get("labels", [])),
                            "description": fields.get("description"),
                            "issuetype": {"name": fields["issuetype"]["name"], "id":
                                          ISSUE_TYPES[fields["issuetype"]["name"]]},
                            "priority": ({"name": fields["priority"]["name"],
                                          "id": PRIORITIES[fields["priority"]["name"]]}
                                         if fields.get("priority") else
                                         {"name": "Medium", "id": "3"}),
                            "resolution": None, "created": now(), "updated": now()}}
        self.store[key] = issue
        return issue

    def _add_comment(self, request: Request, issue: dict[str, Any], adf: dict[str, Any],
                     properties: Any = None) -> dict[str, Any]:
        account = self.accounts[request.environ[ACCOUNT_KEY]]
        comment_id = str(next(self.comment_ids))
        comment = {"id": comment_id,
                   "self": f"{self.base_url}/rest/api/3/issue/{issue['id']}/comment/"
                           f"{comment_id}",
                   "author": {"accountId": account["accountId"],
                              "displayName": account["displayName"]},
                   "body": adf, "created": now(), "updated": now(), "jsdPublic": True,
                   "properties": {p["key"]: p.get("value") for p in properties or []
                                  if isinstance(p, dict) and p.get("key")}}
        issue["comments"].append(comment)
        return comment
