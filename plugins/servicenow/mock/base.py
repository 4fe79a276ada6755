"""The ServiceNow mock's core: instance state, users and roles, HTTP Basic and `oauth_token.do`
bearer tokens, the rate limit and lost answers. The Table API is a route group over this
class; server.ServiceNowMock is the sum: a stateful imitation of a ServiceNow instance.

What it does as an instance does: `/api/now/table/{table}` list/get/insert/update with the
`{"result": ...}` envelope and string field values, encoded queries, sysparm_limit/offset paging
with `Link` and `X-Total-Count` headers, journal fields (work notes) that only show as display
values, ACLs by role (403 "ACL Exception" on writes, rows hidden on reads), the incident
resolution data policy, HTTP Basic and `oauth_token.do` bearer tokens that expire, 429 with
Retry-After and X-RateLimit-* headers, and `{"error": {"message", "detail"}, "status":
"failure"}` error bodies.

Test helpers: `add_user`, `set_roles`, `expire_tokens`, `throttle`, `lose_response` (apply a
request, then answer 5xx or too late: the answer is lost but the record exists),
`refuse_state_changes`, `records`, `journal`.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route

INTEGRATION_USER = "crownguard.integration"
OAUTH_CLIENT_ID = "crownguard-oauth-client"
USER_KEY = "servicenow.user"

TASK_FIELDS = frozenset({
    "sys_id", "number", "state", "active", "short_description", "description", "priority",
    "assignment_group", "assigned_to", "opened_by", "opened_at", "correlation_id",
    "correlation_display", "work_notes", "comments", "close_notes", "sys_created_on",
    "sys_created_by", "sys_updated_on", "sys_updated_by", "sys_class_name"})
JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
READ_ONLY = frozenset({"sys_id", "number", "sys_created_on", "sys_created_by",
                       "sys_updated_on", "sys_updated_by", "sys_class_name"})


@dataclass(frozen=True)
class Table:
    fields: frozenset[str]
    read_roles: frozenset[str] = frozenset()   # any of them; empty: every authenticated user
    write_roles: frozenset[str] = frozenset()
    prefix: str = ""
    first_number: int = 1
    default_state: str = ""
    closed_states: frozenset[str] = frozenset()
    states: tuple[tuple[str, str], ...] = ()


TABLES: dict[str, Table] = {
    "incident": Table(
        TASK_FIELDS | {"caller_id", "urgency", "impact", "category", "close_code"},
        frozenset({"itil", "admin"}), frozenset({"itil", "admin"}), "INC", 10001, "1",
        frozenset({"6", "7", "8"}),
        (("1", "New"), ("2", "In Progress"), ("3", "On Hold"), ("6", "Resolved"),
         ("7", "Closed"), ("8", "Canceled"))),
    "sn_hr_core_case": Table(
        TASK_FIELDS | {"subject_person", "opened_for", "hr_service", "close_code"},
        frozenset({"sn_hr_core.case_writer", "sn_hr_core.case_reader", "admin"}),
        frozenset({"sn_hr_core.case_writer", "admin"}), "HRC", 1001, "1",
        frozenset({"3", "4", "7"}),
        (("1", "Draft"), ("10", "Ready"), ("18", "Work in Progress"), ("20", "Awaiting "
         "Acceptance"), ("24", "Suspended"), ("3", "Closed Complete"),
         ("4", "Closed Incomplete"), ("7", "Cancelled"))),
    "sys_user": Table(frozenset({"sys_id", "user_name", "email", "name", "first_name",
                                 "last_name", "active", "sys_created_on", "sys_updated_on"}),
                      write_roles=frozenset({"admin"})),
}


def failure(message: str, detail: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class ServiceNowMockBase(MockServer):
    """State and plumbing shared by the ServiceNow route groups."""

    vendor = "servicenow"

    def seed_users(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: sys_user records."""
        for user in items:
            self.add_user(user["user_name"], user["email"], user.get("name", user["user_name"]))

    def reset_state(self) -> None:
        self.password = "sn-" + secrets.token_urlsafe(12)
        self.client_secret = "sn-oauth-" + secrets.token_urlsafe(12)
        self.accounts: dict[str, dict[str, Any]] = {
            INTEGRATION_USER: {"password": self.password,
                               "roles": {"itil", "sn_hr_core.case_writer"}}}
        self.tokens: dict[str, tuple[str, float]] = {}  # access/refresh token -> (user, expiry)
        self.refresh_tokens: dict[str, str] = {}
        self.token_lifetime = 1800
        self.expire_countdown: int | None = None
        self.tables: dict[str, dict[str, dict[str, str]]] = {name: {} for name in TABLES}
        self.journals: dict[str, list[tuple[str, str, str, str]]] = {}
        self.counters = {name: table.first_number for name, table in TABLES.items()}
        self.rate_limited = 0
        self.retry_after = 1
        self.frozen_tables: set[str] = set()
        self.integration_sys_id = self.add_user(INTEGRATION_USER,
                                                "crownguard@example.com", "Crownguard Integration")
        self.add_user("jane.doe", "jane.doe@example.com", "Jane Doe")
        self.add_user("hr.partner", "hr.partner@example.com", "HR Partner")

    # settings and helpers ----------------------------------------------------------------------

    def connection_settings(self, auth: str = "basic") -> dict[str, Any]:
        """`basic` (integration user), `oauth` (password grant), `oauth_client`
        (client_credentials) or `token` (a static bearer token)."""
        settings: dict[str, Any] = {"base_url": self.base_url}
        if auth == "basic":
            settings.update(username=INTEGRATION_USER, password=self.password)
        elif auth in ("oauth", "oauth_client"):
            settings.update(client_id=OAUTH_CLIENT_ID, client_secret=self.client_secret)
            if auth == "oauth":
                settings.update(username=INTEGRATION_USER, password=self.password)
        elif auth == "token":
            settings["token"] = self.issue_token(INTEGRATION_USER, lifetime=86400)[0]
        else:
            raise ValueError(f"unknown auth '{auth}'")
        return settings

    def add_user(self, user_name: str, email: str, name: str) -> str:
        """A sys_user record (a person cases can be about); returns its sys_id."""
        with self.state_lock:
            sys_id = uuid.uuid4().hex
            self.tables["sys_user"][sys_id] = {
                "sys_id": sys_id, "user_name": user_name, "email": email, "name": name,
                "first_name": name.split()[0], "last_name": name.split()[-1], "active": "true",
                "sys_created_on": now_iso(), "sys_updated_on": now_iso()}
            return sys_id

    def set_roles(self, user_name: str, roles: set[str]) -> None:
        with self.state_lock:
            self.accounts[user_name]["roles"] = set(roles)

    def issue_token(self, user: str, lifetime: float | None = None) -> tuple[str, str]:
        with self.state_lock:
            access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
            expiry = time.monotonic() + (lifetime or self.token_lifetime)
            self.tokens[access] = (user, expiry)
            self.refresh_tokens[refresh] = user
            return access, refresh

    def expire_tokens(self, after_calls: int = 0) -> None:
        """Every bearer token issued so far stops working (as after expires_in): now, or once
        `after_calls` more API calls have been answered (to expire them in the middle of a
        run)."""
        with self.state_lock:
            if after_calls > 0:
                self.expire_countdown = after_calls
                return
            self.expire_countdown = None
            self.tokens = {t: (user, 0.0) for t, (user, _) in self.tokens.items()}

    def throttle(self, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` API calls get the instance's rate-limit answer (429)."""
        with self.state_lock:
            self.rate_limited, self.retry_after = times, retry_after

    def lose_response(self, method: str = "POST", path_prefix: str = "/api/now/table/",
                      *, status: int = 503, times: int = 1, delay: float = 0.0) -> None:
        """Apply the next matching request, then lose its answer: send `status` instead, or
        (delay > 0) answer only after `delay` seconds, when the client has given up."""
        self.inject("lost_response", method=method, path=path_prefix + "*", status=status,
                    times=times, seconds=delay)

    def refuse_state_changes(self, table: str) -> None:
        """A business rule that silently keeps `state` on updates of this table."""
        with self.state_lock:
            self.frozen_tables.add(table)

    def records(self, table: str) -> list[dict[str, str]]:
        with self.state_lock:
            return [dict(r) for r in self.tables[table].values()]

    def journal(self, sys_id: str, element: str = "work_notes") -> list[str]:
        with self.state_lock:
            return [text for el, _, _, text in self.journals.get(sys_id, []) if el == element]

    def error_body(self, status: int) -> Any:
        messages = {
            400: ("Invalid request", "The request could not be processed"),
            401: ("User Not Authenticated", "Required to provide Auth information"),
            403: ("Operation Failed", "ACL Exception Insert Failed due to security constraints"),
            404: ("No Record found", "Record doesn't exist or ACL restricts the record "
                                     "retrieval"),
            429: ("Too Many Requests", "Rate limit exceeded for rule REST API rate limit"),
        }
        message, detail = messages.get(status, ("Internal server error",
                                                f"Transaction failed with HTTP {status}"))
        return failure(message, detail)

    def not_found(self, request: Request) -> Response:
        return self.json_response(failure("Requested URI does not represent any resource",
                                          None), 400)

    # dispatch: authentication, rate limit, lost answers ----------------------------------------

    def before_route(self, request: Request) -> Response | None:
        if request.path.startswith("/api/"):
            return self._authenticate(request) or self._rate_limit()
        return None

    def _authenticate(self, request: Request) -> Response | None:
        if self.expire_countdown is not None:
            self.expire_countdown -= 1
            if self.expire_countdown < 0:
                self.expire_tokens()
        header = request.headers.get("Authorization", "")
        user: str | None = None
        if header.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            account = self.accounts.get(name)
            if account and secrets.compare_digest(account["password"], password):
                user = name
        elif header.startswith("Bearer "):
            entry = self.tokens.get(header[7:])
            if entry and entry[1] > time.monotonic():
                user = entry[0]
        if user is None:
            return self.json_response(self.error_body(401), 401,
                                      {"WWW-Authenticate": 'Basic realm="Service-now"'})
        request.environ[USER_KEY] = user
        return None

    def _rate_limit(self) -> Response | None:
        if self.rate_limited <= 0:
            return None
        self.rate_limited -= 1
        headers = {"Retry-After": str(self.retry_after), "X-RateLimit-Limit": "5000",
                   "X-RateLimit-Reset": str(int(time.time()) + self.retry_after),
                   "X-RateLimit-Rule": "e3a4ba6bdb123300f8b2d5a43a9619b2"}
        return self.json_response(self.error_body(429), 429, headers)

    # OAuth -------------------------------------------------------------------------------------

    @route("POST", "/oauth_token.do")
    def oauth_token(self, request: Request) -> Response:
        form = request.form
        denied = self.json_response({"error_description": "access_denied",
                                     "error": "server_error"}, 401)
        if form.get("client_id") != OAUTH_CLIENT_ID or not secrets.compare_digest(
                form.get("client_secret", ""), self.client_secret):
            return denied
        grant = form.get("grant_type")
        if grant == "password":
            account = self.accounts.get(form.get("username", ""))
            if not account or not secrets.compare_digest(account["password"],
                                                         form.get("password", "")):
                return denied
            user = form["username"]
        elif grant == "client_credentials":
            user = INTEGRATION_USER
        elif grant == "refresh_token" and form.get("refresh_token") in self.refresh_tokens:
            user = self.refresh_tokens[form["refresh_token"]]
        else:
            return denied
        access, refresh = self.issue_token(user)
        return self.json_response({"access_token": access, "refresh_token": refresh,
                                   "scope": "useraccount", "token_type": "Bearer",
                                   "expires_in": self.token_lifetime})
