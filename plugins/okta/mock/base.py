"""The Okta mock's core: org state, `SSWS` auth, error bodies, `Link` paging and the
rate-limit headers. Route groups (users, groups) are mixins over this class; server.OktaMock
is their sum. Together they imitate the Okta Management API (users, lifecycle, sessions,
groups) with Okta's paths.

Faithful points a plugin can trip over: `GET /users/{id}` takes an id, login or unambiguous
login shortname; the plain user list hides DEPROVISIONED users while `search` shows them;
suspend answers 200 with an empty body and refuses (400 E0000001) a user who is not ACTIVE;
session revocation answers 204 whether or not anything was open; every answer carries
`X-Rate-Limit-*` headers and a 429 says when to come back only through `X-Rate-Limit-Reset`.
"""

from __future__ import annotations

import functools
import math
import random
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request, Response

from crownguard.engine import MockServer, parse_retry_after

from .search import compile_search

API_TOKEN = "00mockOktaApiToken-7c1e94b2d35f48a6b0e1"  # noqa: S105 - the mock's own token
ALL_PERMISSIONS = frozenset({"okta.users.read", "okta.users.manage", "okta.groups.read",
                             "okta.groups.manage"})
READ_ONLY = frozenset({"okta.users.read", "okta.groups.read"})
RATE_LIMIT = 600
MAX_LIMIT = 200

Handler = Callable[..., Any]


def requires(permission: str) -> Callable[[Handler], Handler]:
    """Check the `SSWS` token and that its admin holds `permission` (the OAuth scope name)."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        def handler(self: OktaMockBase, request: Request, **params: str) -> Any:
            denied = self.authorize(request, permission)
            return denied if denied is not None else func(self, request, **params)

        return handler

    return wrap


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class OktaMockBase(MockServer):
    """State and plumbing shared by every Okta route group."""

    vendor = "okta"

    def seed_users(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: users by login, with their status and open sessions."""
        for user in items:
            self.add_user(user["login"], email=user.get("email"),
                          first_name=user.get("first_name", "Test"),
                          last_name=user.get("last_name", "User"),
                          status=user.get("status", "ACTIVE"), sessions=user.get("sessions", 1))

    def reset_state(self) -> None:
        self._rng = random.Random(3)
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.sessions: dict[str, int] = {}
        self.oauth_tokens: dict[str, int] = {}
        self.remembered_devices: dict[str, int] = {}
        self.api_tokens: dict[str, frozenset[str]] = {API_TOKEN: ALL_PERMISSIONS}
        # OAuth service apps (oauth.py) and the access tokens they were given (scopes, expiry).
        self.service_apps: dict[str, dict[str, Any]] = {}
        self.access_tokens: dict[str, tuple[frozenset[str], float]] = {}
        self.page_size: int | None = None  # cap page sizes below `limit` to exercise paging
        self._window = (0, 0)
        self._seed()

    def _seed(self) -> None:
        alice = self.add_user("alice.chen@acme.example", first_name="Alice", last_name="Chen",
                              sessions=2, oauth_tokens=3)
        bob = self.add_user("bob.ruiz@acme.example", first_name="Bob", last_name="Ruiz")
        self.add_user("carol.diaz@acme.example", first_name="Carol", last_name="Diaz",
                      status="SUSPENDED")
        everyone = self.add_group("Everyone", group_type="BUILT_IN")
        ml = self.add_group("ML Engineers", description="Model training and evaluation")
        writers = self.add_group("Model Registry Writers")
        research = self.add_group("AD-Research", group_type="APP_GROUP")
        for user_id in self.users:
            self.add_member(everyone, user_id)
        for group in (ml, writers, research):
            self.add_member(group, alice)
        self.add_member(ml, bob)

    # helpers for tests and the demo --------------------------------------------------------------

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "token": API_TOKEN}

    def new_id(self, prefix: str) -> str:
        return prefix + "".join(self._rng.choices(string.ascii_letters + string.digits, k=17))

    def add_user(self, login: str, *, email: str | None = None, first_name: str = "Test",
                 last_name: str = "User", status: str = "ACTIVE", sessions: int = 1,
                 oauth_tokens: int = 0) -> str:
        """Create a user (status as given) and return its id."""
        with self.state_lock:
            user_id = self.new_id("00u")
            stamp = now_iso()
            self.users[user_id] = {
                "id": user_id, "status": status, "created": stamp,
                "activated": stamp if status != "STAGED" else None, "statusChanged": stamp,
                "lastLogin": stamp if sessions else None, "lastUpdated": stamp,
                "passwordChanged": stamp, "type": {"id": "oty1mockdefaulttype0"},
                "profile": {"firstName": first_name, "lastName": last_name,
                            "mobilePhone": None, "secondEmail": None, "login": login,
                            "email": email or login},
                "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
            }
            self.sessions[user_id] = sessions
            self.oauth_tokens[user_id] = oauth_tokens
            self.remembered_devices[user_id] = 1
            return user_id

    def add_group(self, name: str, *, group_type: str = "OKTA_GROUP",
                  description: str = "") -> str:
        with self.state_lock:
            group_id = self.new_id("00g")
            stamp = now_iso()
            object_class = ("okta:windows_security_principal" if group_type == "APP_GROUP"
                            else "okta:user_group")
            self.groups[group_id] = {
                "id": group_id, "created": stamp, "lastUpdated": stamp,
                "lastMembershipUpdated": stamp, "objectClass": [object_class],
                "type": group_type, "profile": {"name": name, "description": description},
            }
            self.members[group_id] = set()
            return group_id

    def add_member(self, group_id: str, user_id: str) -> None:
        with self.state_lock:
            self.members[group_id].add(user_id)

    def user_id(self, login: str) -> str:
        found = self._find_user(login)
        if found is None:
            raise KeyError(login)
        return str(found["id"])

    def status_of(self, user: str) -> str:
        return str(self.users[self.user_id(user)]["status"])

    def add_api_token(self, token: str, permissions: frozenset[str] = ALL_PERMISSIONS) -> None:
        """Register an API token whose admin holds `permissions` (e.g. READ_ONLY)."""
        with self.state_lock:
            self.api_tokens[token] = permissions

    def expire_access_tokens(self) -> None:
        """Every OAuth access token issued so far expires now."""
        with self.state_lock:
            self.access_tokens.clear()

    def revoke_api_token(self, token: str = API_TOKEN) -> None:
        """Revoke a token (an admin deleted it, or it expired after 30 days unused)."""
        with self.state_lock:
            self.api_tokens.pop(token, None)

    def _authorize_oauth(self, token: str, permission: str) -> Response | None:
        """An OAuth access token: its scopes decide (a `.manage` scope includes `.read`)."""
        grant = self.access_tokens.get(token)
        if grant is None or grant[1] < time.monotonic():
            return self.error(401, "E0000011", "Invalid token provided")
        scopes = grant[0] | {s.replace(".manage", ".read") for s in grant[0]}
        if permission not in scopes:
            return self.error(403, "E0000006", "You do not have permission to perform the "
                                               "requested action")
        return None

    # Okta's shapes -------------------------------------------------------------------------------

    def error(self, status: int, code: str, summary: str,
              causes: tuple[str, ...] = ()) -> Response:
        return self.json_response(self.error_payload(code, summary, causes), status)

    def error_payload(self, code: str, summary: str, causes: tuple[str, ...] = ()) -> Any:
        return {"errorCode": code, "errorSummary": summary, "errorLink": code,
                "errorId": "oae" + "".join(self._rng.choices(string.ascii_letters, k=19)),
                "errorCauses": [{"errorSummary": c} for c in causes]}

    def error_body(self, status: int) -> Any:
        known = {400: ("E0000001", "Api validation failed"),
                 401: ("E0000011", "Invalid token provided"),
                 403: ("E0000006", "You do not have permission to perform the requested action"),
                 404: ("E0000007", "Not found: Resource not found"),
                 429: ("E0000047", "API call exceeded rate limit due to too many requests.")}
        code, summary = known.get(status, ("E0000009", "Internal Server Error"))
        return self.error_payload(code, summary)

    def not_found(self, request: Request) -> Response:
        return self.error(404, "E0000007", f"Not found: Resource not found: {request.path} (Path)")

    def authorize(self, request: Request, permission: str) -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme == "Bearer":
            return self._authorize_oauth(token.strip(), permission)
        if scheme != "SSWS" or token.strip() not in self.api_tokens:
            return self.error(401, "E0000011", "Invalid token provided")
        if permission not in self.api_tokens[token.strip()]:
            return self.error(403, "E0000006",
                              "You do not have permission to perform the requested action")
        return None

    def render_user(self, user: dict[str, Any]) -> dict[str, Any]:
        return {**user, "_links": {"self": {"href": f"{self.base_url}/api/v1/users/{user['id']}"}}}

    def render_group(self, group: dict[str, Any]) -> dict[str, Any]:
        href = f"{self.base_url}/api/v1/groups/{group['id']}"
        return {**group, "_links": {"self": {"href": href}, "users": {"href": f"{href}/users"}}}

    def _find_user(self, key: str) -> dict[str, Any] | None:
        if key in self.users:
            return self.users[key]
        lowered = key.lower()
        by_login = [u for u in self.users.values() if u["profile"]["login"].lower() == lowered]
        if by_login:
            return by_login[0]
        by_short = [u for u in self.users.values()
                    if u["profile"]["login"].lower().split("@")[0] == lowered]
        return by_short[0] if len(by_short) == 1 else None

    def _user_or_404(self, key: str) -> dict[str, Any] | Response:
        found = self._find_user(key)
        if found is None:
            return self.error(404, "E0000007", f"Not found: Resource not found: {key} (User)")
        return found

    def page(self, request: Request, items: list[dict[str, Any]], path: str) -> Response:
        """One page of `items` (sorted by id) with Okta's `Link` headers."""
        try:
            limit = int(request.args.get("limit", MAX_LIMIT))
        except ValueError:
            return self.error(400, "E0000001", "Api validation failed: limit",
                              ("limit: must be a number",))
        limit = max(1, min(limit, MAX_LIMIT, self.page_size or MAX_LIMIT))
        after = request.args.get("after")
        items = sorted(items, key=lambda i: i["id"])
        if after:
            items = [i for i in items if i["id"] > after]
        chunk = items[:limit]
        query = {k: v for k, v in request.args.items() if k != "after"}
        links = [f'<{self.base_url}{path}?{urlencode(request.args)}>; rel="self"']
        if len(items) > limit:
            query.update(after=chunk[-1]["id"], limit=str(limit))
            links.append(f'<{self.base_url}{path}?{urlencode(query)}>; rel="next"')
        response = self.json_response(chunk)
        for link in links:
            response.headers.add("Link", link)
        return response

    def _filtered(self, request: Request, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        expression = request.args.get("search") or request.args.get("filter")
        if expression is not None:
            predicate = compile_search(expression)
            return [r for r in records if predicate(r)]
        return records

    # rate-limit headers on every answer ----------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        now = time.time()
        minute = int(now // 60)
        with self.state_lock:
            used = self._window[1] + 1 if self._window[0] == minute else 1
            self._window = (minute, used)
        reset = (minute + 1) * 60
        remaining = max(0, RATE_LIMIT - used)
        if response.status_code == 429:
            # Okta says when to come back through X-Rate-Limit-Reset, not Retry-After.
            # Delta-seconds or an HTTP date (an unreadable one: a second from now).
            wait = response.headers.pop("Retry-After", None)
            if wait is not None:
                seconds = parse_retry_after(wait, now)
                reset = math.ceil(now + (1.0 if seconds is None else seconds))
            remaining = 0
        response.headers["X-Rate-Limit-Limit"] = str(RATE_LIMIT)
        response.headers["X-Rate-Limit-Remaining"] = str(remaining)
        response.headers["X-Rate-Limit-Reset"] = str(reset)
        response.headers["X-Okta-Request-Id"] = "".join(
            random.choices(string.ascii_letters + string.digits, k=24))
        return response
