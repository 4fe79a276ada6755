"""ServiceNowMock: a stateful imitation of a ServiceNow instance's Table API and OAuth endpoint.

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
from urllib.parse import urlencode

from werkzeug import Request, Response

from crownguard.engine import MockServer, route

from .mock_query import parse_query

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


def _error(message: str, detail: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class ServiceNowMock(MockServer):
    """A ServiceNow instance with incident, sn_hr_core_case and sys_user tables."""

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
                "sys_created_on": _now(), "sys_updated_on": _now()}
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
        return _error(message, detail)

    def not_found(self, request: Request) -> Response:
        return self.json_response(_error("Requested URI does not represent any resource",
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

    # Table API ---------------------------------------------------------------------------------

    def _table(self, name: str) -> Table | Response:
        table = TABLES.get(name)
        if table is None:
            return self.json_response(_error(f"Invalid table {name}", None), 400)
        return table

    def _may(self, request: Request, roles: frozenset[str]) -> bool:
        user = request.environ.get(USER_KEY, "")
        return not roles or bool(self.accounts.get(user, {}).get("roles", set()) & roles)

    def _render(self, table: str, record: dict[str, str], request: Request) -> dict[str, Any]:
        display = request.args.get("sysparm_display_value", "false") in ("true", "all")
        exclude_links = request.args.get("sysparm_exclude_reference_link") == "true"
        wanted = [f for f in request.args.get("sysparm_fields", "").split(",") if f]
        out: dict[str, Any] = {}
        for field in wanted or sorted(TABLES[table].fields):
            if field not in TABLES[table].fields:
                continue
            value: Any = record.get(field, "")
            if field in JOURNAL_FIELDS:
                value = self._journal_text(record["sys_id"], field) if display else ""
            elif field == "state" and display:
                value = dict(TABLES[table].states).get(value, value)
            elif field in ("caller_id", "opened_for", "subject_person", "opened_by") \
                    and value and not exclude_links and not display:
                value = {"link": f"{self.base_url}/api/now/table/sys_user/{value}",
                         "value": value}
            out[field] = value
        return out

    def _journal_text(self, sys_id: str, element: str) -> str:
        label = "Work notes" if element == "work_notes" else "Additional comments"
        entries = [e for e in self.journals.get(sys_id, []) if e[0] == element]
        return "\n\n".join(f"{at} - {author} ({label})\n{text}"
                           for _, at, author, text in reversed(entries))

    def _author(self, request: Request) -> str:
        user = request.environ.get(USER_KEY, "")
        for record in self.tables["sys_user"].values():
            if record["user_name"] == user:
                return record["name"]
        return user

    def _apply(self, table: str, record: dict[str, str], values: dict[str, Any],
               request: Request) -> None:
        for field, value in values.items():
            if field not in TABLES[table].fields or field in READ_ONLY:
                continue  # an instance ignores fields it does not know
            text = "" if value is None else str(value).lower() if isinstance(value, bool) \
                else str(value)
            if field in JOURNAL_FIELDS:
                if text:
                    self.journals.setdefault(record["sys_id"], []).append(
                        (field, _now(), self._author(request), text))
                continue
            if field == "state" and table in self.frozen_tables and "state" in record:
                continue
            record[field] = text
        record["active"] = "false" if record.get("state") in TABLES[table].closed_states \
            else record.get("active", "true")
        record["sys_updated_on"] = _now()
        record["sys_updated_by"] = request.environ.get(USER_KEY, "")

    @route("GET", "/api/now/table/{table}")
    def list_records(self, request: Request, table: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        try:
            limit = int(request.args.get("sysparm_limit", "10000"))
            offset = int(request.args.get("sysparm_offset", "0"))
        except ValueError:
            return self.json_response(_error("Invalid request", "sysparm_limit and "
                                             "sysparm_offset must be numbers"), 400)
        if offset < 0:
            return self.json_response(_error(f"offset is {offset}",
                                             "Negative offset is not supported"), 400)
        rows: list[dict[str, str]] = []
        if self._may(request, spec.read_roles):  # rows an ACL hides are simply not returned
            query = parse_query(request.args.get("sysparm_query", ""))
            rows = query.sort([r for r in self.tables[table].values() if query.matches(r)])
        page = rows[offset:offset + max(limit, 0)]
        headers = {"X-Total-Count": str(len(rows))}
        link = self._link_header(request, table, len(rows), limit, offset)
        if link:
            headers["Link"] = link
        return self.json_response({"result": [self._render(table, r, request) for r in page]},
                                  200, headers)

    def _link_header(self, request: Request, table: str, total: int, limit: int,
                     offset: int) -> str:
        if limit <= 0 or (total <= limit and offset == 0):
            return ""
        args = {k: v for k, v in request.args.items()
                if k not in ("sysparm_offset", "sysparm_limit")}

        def link(at: int, rel: str) -> str:
            query = urlencode({**args, "sysparm_offset": at, "sysparm_limit": limit})
            return f'<{self.base_url}/api/now/table/{table}?{query}>;rel="{rel}"'

        last = max(0, (total - 1) // limit * limit)
        links = [link(0, "first")]
        if offset > 0:
            links.append(link(max(0, offset - limit), "prev"))
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(last, "last"))
        return ",".join(links)

    @route("GET", "/api/now/table/{table}/{sys_id}")
    def get_record(self, request: Request, table: str, sys_id: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        record = self.tables[table].get(sys_id)
        if record is None or not self._may(request, spec.read_roles):
            return self.json_response(self.error_body(404), 404)
        return self.json_response({"result": self._render(table, record, request)})

    @route("POST", "/api/now/table/{table}")
    def insert_record(self, request: Request, table: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        if not self._may(request, spec.write_roles):
            return self.json_response(self.error_body(403), 403)
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            return self.json_response(_error("Exception while reading request",
                                             "The payload is not valid JSON."), 400)
        sys_id = uuid.uuid4().hex
        record = {"sys_id": sys_id, "sys_created_on": _now(), "sys_class_name": table,
                  "sys_created_by": request.environ.get(USER_KEY, ""), "active": "true"}
        if spec.prefix:
            record["number"] = f"{spec.prefix}{self.counters[table]:07d}"
            self.counters[table] += 1
            record.update(state=spec.default_state, opened_by=self.integration_sys_id,
                          opened_at=_now())
        self.tables[table][sys_id] = record
        self._apply(table, record, values, request)
        return self.json_response(
            {"result": self._render(table, record, request)}, 201,
            {"Location": f"{self.base_url}/api/now/table/{table}/{sys_id}"})

    @route("PATCH", "/api/now/table/{table}/{sys_id}")
    @route("PUT", "/api/now/table/{table}/{sys_id}")
    def update_record(self, request: Request, table: str, sys_id: str) -> Response:
        spec = self._table(table)
        if isinstance(spec, Response):
            return spec
        record = self.tables[table].get(sys_id)
        if record is None or not self._may(request, spec.read_roles | spec.write_roles):
            return self.json_response(self.error_body(404), 404)
        if not self._may(request, spec.write_roles):
            return self.json_response(_error("Operation Failed", "ACL Exception Update Failed "
                                             "due to security constraints"), 403)
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            return self.json_response(_error("Exception while reading request",
                                             "The payload is not valid JSON."), 400)
        if table == "incident" and str(values.get("state")) == "6":
            missing = [label for field, label in (("close_code", "Resolution code"),
                                                  ("close_notes", "Resolution notes"))
                       if not (values.get(field) or record.get(field))]
            if missing:
                return self.json_response(_error(
                    "Operation Failed", "Data Policy Exception: \n\tThe following fields are "
                    f"mandatory: {', '.join(missing)}"), 403)
        self._apply(table, record, values, request)
        return self.json_response({"result": self._render(table, record, request)})
