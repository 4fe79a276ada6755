"""The Entra mock's core: tenant state, the Microsoft identity platform token endpoint,
permission checks, Graph and AADSTS error shapes, `$select` and collection paging. Route
groups (users, groups) are mixins over this class; server.EntraMock is their sum: the slice
of Microsoft Graph v1.0 that identity response uses (users, revokeSignInSessions, groups and
members), stateful.

Faithful points: app-only tokens from `POST /{tenant}/oauth2/v2.0/token` (AADSTS errors, the
`/.default` scope rule), application permissions checked per call (403
Authorization_RequestDenied), expiring tokens (401 InvalidAuthenticationToken), the default
user property set without `accountEnabled` unless `$select`ed, `@odata.nextLink` paging,
404 Request_ResourceNotFound for removing a non-member, 400 for adding an existing member or
changing what on-premises AD owns, and `request-id` headers.
"""

from __future__ import annotations

import base64
import functools
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request, Response

from crownguard.engine import (
    ASSERTION_TYPE,
    AssertionRefused,
    MockServer,
    public_key_of,
    route,
    thumbprints,
    verify_assertion,
)

from .odata import UnsupportedQuery, compile_filter

TENANT_ID = "6b1f3c5e-2a4d-4e8f-9c0b-1d2e3f4a5b6c"
TENANT_DOMAIN = "acme.onmicrosoft.com"
CLIENT_ID = "0c9d8e7f-6a5b-4c3d-8e1f-a2b3c4d5e6f7"
CLIENT_SECRET = "mock~Entra.Secret_8Qz3vLw9Tk2RfY7Hn4"  # noqa: S105 - the mock's own secret
TOKEN_LIFETIME = 3599
FULL_ACCESS = frozenset({"User.Read.All", "User.RevokeSessions.All",
                         "User.EnableDisableAccount.All", "GroupMember.ReadWrite.All"})
READ_ONLY = frozenset({"User.Read.All", "GroupMember.Read.All"})

USER_DEFAULT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
USER_PROPERTIES = set(USER_DEFAULT) | {"accountEnabled", "userType", "onPremisesSyncEnabled",
                                       "signInSessionsValidFromDateTime", "department",
                                       "otherMails", "createdDateTime"}
USER_FILTERABLE = {"id", "mail", "userPrincipalName", "displayName", "accountEnabled",
                   "userType", "givenName", "surname", "department"}
GROUP_PROPERTIES = {"id", "displayName", "description", "groupTypes", "mailEnabled",
                    "securityEnabled", "onPremisesSyncEnabled", "mail", "createdDateTime"}
GROUP_FILTERABLE = {"id", "displayName", "mailEnabled", "securityEnabled"}
# Application permissions that satisfy each kind of call, least privileged first.
READ_USERS = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All",
              "Directory.ReadWrite.All")
REVOKE = ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
ENABLE_DISABLE = ("User.EnableDisableAccount.All", "User.ReadWrite.All",
                  "Directory.ReadWrite.All")
READ_GROUPS = ("GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All",
               "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
WRITE_MEMBERS = ("GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All")
ON_PREM_MASTERED = ("Unable to update the specified properties for on-premises mastered "
                    "Directory Sync objects or objects currently undergoing migration.")

Handler = Callable[..., Any]


def requires(*permissions: str) -> Callable[[Handler], Handler]:
    """Check the bearer token and that its app holds one of `permissions`."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        def handler(self: EntraMockBase, request: Request, **params: str) -> Any:
            denied = self.authorize(request, permissions)
            return denied if denied is not None else func(self, request, **params)

        return handler

    return wrap


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EntraMockBase(MockServer):
    """State and plumbing shared by every Entra route group."""

    vendor = "entra"

    def seed_users(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: users by UPN."""
        for user in items:
            self.add_user(user["upn"], mail=user.get("mail"),
                          display_name=user.get("name", "Test User"),
                          enabled=user.get("enabled", True))

    def reset_state(self) -> None:
        self._rng = random.Random(11)
        self.apps: dict[str, dict[str, Any]] = {
            CLIENT_ID: {"secret": CLIENT_SECRET, "roles": set(FULL_ACCESS), "keys": {}}}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.refresh_tokens: dict[str, int] = {}
        self.page_size: int | None = None
        self._seed()

    def _seed(self) -> None:
        alice = self.add_user("alice.chen@acme.example", display_name="Alice Chen")
        bob = self.add_user("bob.ruiz@acme.example", display_name="Bob Ruiz")
        self.add_user("hybrid.user@acme.example", display_name="Hybrid User", on_premises=True)
        ml = self.add_group("ML Engineers")
        registry = self.add_group("Model Registry Writers")
        self.add_group("All Staff (dynamic)", group_types=("DynamicMembership",))
        self.add_member(ml, alice)
        self.add_member(ml, bob)
        self.add_member(registry, alice)

    # helpers for tests and the demo --------------------------------------------------------------

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "token_url": f"{self.base_url}/{TENANT_ID}/oauth2/v2.0/token"}

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def add_user(self, upn: str, *, mail: str | None = None, display_name: str = "Test User",
                 enabled: bool = True, on_premises: bool = False,
                 refresh_tokens: int = 2) -> str:
        with self.state_lock:
            user_id = self.new_id()
            given, _, surname = display_name.partition(" ")
            self.users[user_id] = {
                "id": user_id, "userPrincipalName": upn, "mail": upn if mail is None else mail,
                "displayName": display_name, "givenName": given, "surname": surname,
                "businessPhones": [], "jobTitle": None, "mobilePhone": None,
                "officeLocation": None, "preferredLanguage": None, "department": None,
                "otherMails": [], "accountEnabled": enabled, "userType": "Member",
                "onPremisesSyncEnabled": True if on_premises else None,
                "signInSessionsValidFromDateTime": "2026-01-05T09:00:00Z",
                "createdDateTime": "2025-03-01T08:00:00Z",
            }
            self.refresh_tokens[user_id] = refresh_tokens
            return user_id

    def add_group(self, name: str, *, group_types: tuple[str, ...] = (),
                  mail_enabled: bool = False, security_enabled: bool = True,
                  on_premises: bool = False) -> str:
        with self.state_lock:
            group_id = self.new_id()
            self.groups[group_id] = {
                "id": group_id, "displayName": name, "description": None,
                "groupTypes": list(group_types), "mailEnabled": mail_enabled,
                "securityEnabled": security_enabled, "mail": None,
                "onPremisesSyncEnabled": True if on_premises else None,
                "createdDateTime": "2025-03-01T08:00:00Z",
            }
            self.members[group_id] = set()
            return group_id

    def add_member(self, group_id: str, user_id: str) -> None:
        with self.state_lock:
            self.members[group_id].add(user_id)

    def user_id(self, upn: str) -> str:
        for user in self.users.values():
            if user["userPrincipalName"].lower() == upn.lower():
                return str(user["id"])
        raise KeyError(upn)

    def user(self, upn: str) -> dict[str, Any]:
        return self.users[self.user_id(upn)]

    def set_permissions(self, permissions: frozenset[str], client_id: str = CLIENT_ID) -> None:
        """Change the app's consented application permissions (new tokens carry them)."""
        with self.state_lock:
            self.apps[client_id]["roles"] = set(permissions)

    def add_certificate(self, certificate_pem: str, client_id: str = CLIENT_ID) -> None:
        """Upload a certificate to the app registration: client assertions signed by its key
        are then accepted (Entra finds the key by the `x5t` or `x5t#S256` thumbprint)."""
        with self.state_lock:
            key = public_key_of(certificate_pem)
            keys = self.apps[client_id].setdefault("keys", {})
            for thumbprint in thumbprints(certificate_pem).values():
                keys[thumbprint] = key

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (as an hour passing would do)."""
        with self.state_lock:
            for token in self.tokens.values():
                token["expires_at"] = 0.0

    # Graph and AAD shapes ------------------------------------------------------------------------

    def graph_error(self, status: int, code: str, message: str,
                    headers: dict[str, str] | None = None) -> Response:
        return self.json_response(self.graph_error_payload(code, message), status, headers)

    def graph_error_payload(self, code: str, message: str) -> Any:
        return {"error": {"code": code, "message": message, "innerError": {
            "date": now_iso(), "request-id": str(uuid.uuid4()),
            "client-request-id": str(uuid.uuid4())}}}

    def error_body(self, status: int) -> Any:
        known = {400: ("BadRequest", "Bad request."),
                 401: ("InvalidAuthenticationToken", "Access token has expired or is not yet "
                                                     "valid."),
                 403: ("Authorization_RequestDenied", "Insufficient privileges to complete the "
                                                      "operation."),
                 404: ("Request_ResourceNotFound", "Resource does not exist."),
                 429: ("TooManyRequests", "Too many requests."),
                 503: ("serviceNotAvailable", "Service unavailable.")}
        code, message = known.get(status, ("generalException", "General exception while "
                                                               "processing."))
        return self.graph_error_payload(code, message)

    def not_found(self, request: Request) -> Response:
        return self.graph_error(400, "BadRequest",
                                f"Resource not found for the segment '{request.path}'.")

    def aad_error(self, status: int, error: str, code: int, description: str) -> Response:
        trace = str(uuid.uuid4())
        return self.json_response({
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\n"
                                 f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: {now_iso()}",
            "error_codes": [code], "timestamp": now_iso(), "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}, status)

    def authorize(self, request: Request, permissions: tuple[str, ...]) -> Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not token:
            return self.graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        grant = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            return self.graph_error(401, "InvalidAuthenticationToken",
                                    "IDX14100: JWT is not well formed.")
        if grant["expires_at"] <= time.monotonic():
            return self.graph_error(401, "InvalidAuthenticationToken",
                                    "Lifetime validation failed, the token is expired.")
        if not set(permissions) & grant["roles"]:
            return self.graph_error(403, "Authorization_RequestDenied",
                                    "Insufficient privileges to complete the operation.")
        return None

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        response.headers["request-id"] = str(uuid.uuid4())
        response.headers["client-request-id"] = request.headers.get("client-request-id",
                                                                    response.headers["request-id"])
        response.headers["x-ms-ags-diagnostic"] = '{"ServerInfo":{"DataCenter":"Mock"}}'
        return response

    def select(self, request: Request, record: dict[str, Any], known: set[str],
               default: tuple[str, ...] | None, kind: str) -> dict[str, Any] | Response:
        raw = request.args.get("$select")
        fields = [f.strip() for f in raw.split(",") if f.strip()] if raw else \
            list(default or record.keys())
        for name in fields:
            if name not in known:
                return self.graph_error(400, "BadRequest", f"Could not find a property named "
                                                           f"'{name}' on type 'microsoft.graph."
                                                           f"{kind}'.")
        return {name: record.get(name) for name in fields}

    def collection(self, request: Request, records: list[dict[str, Any]], path: str,
                   known: set[str], default: tuple[str, ...] | None, filterable: set[str],
                   kind: str) -> Response:
        """A filtered, selected, paged collection answer with `@odata.nextLink`."""
        try:
            top = int(request.args.get("$top", 100))
            offset = int(base64.urlsafe_b64decode(request.args.get("$skiptoken", "MA==")))
        except ValueError:
            return self.graph_error(400, "BadRequest", "Invalid $top or $skiptoken value.")
        if not 1 <= top <= 999:
            return self.graph_error(400, "Request_BadRequest", "Invalid page size specified: "
                                    f"'{top}'. Must be between 1 and 999 inclusive.")
        if "$filter" in request.args:
            try:
                predicate = compile_filter(request.args["$filter"], filterable)
            except UnsupportedQuery as exc:
                return self.graph_error(400, "Request_UnsupportedQuery", str(exc))
            records = [r for r in records if predicate(r)]
        size = min(top, self.page_size or top)
        page = []
        for record in records[offset:offset + size]:
            selected = self.select(request, record, known, default, kind)
            if isinstance(selected, Response):
                return selected
            page.append(selected)
        body: dict[str, Any] = {"@odata.context": f"{self.base_url}/v1.0/$metadata#{path}",
                                "value": page}
        if offset + size < len(records):
            query = {k: v for k, v in request.args.items() if k != "$skiptoken"}
            query["$skiptoken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
            body["@odata.nextLink"] = f"{self.base_url}/v1.0/{path}?{urlencode(query)}"
        return self.json_response(body)

    def _user(self, key: str) -> dict[str, Any] | Response:
        if key.startswith("('") and key.endswith("')"):
            key = key[2:-2].replace("''", "'")
        if key in self.users:
            return self.users[key]
        for user in self.users.values():
            if user["userPrincipalName"].lower() == key.lower():
                return user
        return self.graph_error(404, "Request_ResourceNotFound",
                                f"Resource '{key}' does not exist or one of its queried "
                                "reference-property objects are not present.")

    def _group(self, group_id: str) -> dict[str, Any] | Response:
        if group_id in self.groups:
            return self.groups[group_id]
        return self.graph_error(404, "Request_ResourceNotFound",
                                f"Resource '{group_id}' does not exist or one of its queried "
                                "reference-property objects are not present.")

    # token endpoint ------------------------------------------------------------------------------

    @route("POST", "/{tenant}/oauth2/v2.0/token")
    def token(self, request: Request, tenant: str) -> Response:
        form = request.form
        if tenant not in (TENANT_ID, TENANT_DOMAIN):
            return self.aad_error(400, "invalid_request", 90002,
                                  f"Tenant '{tenant}' not found. Check to make sure you have the "
                                  "correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return self.aad_error(400, "unsupported_grant_type", 70003,
                                  "The app requested an unsupported grant type.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return self.aad_error(400, "unauthorized_client", 700016,
                                  f"Application with identifier '{form.get('client_id')}' was "
                                  f"not found in the directory '{TENANT_DOMAIN}'.")
        if form.get("client_assertion") or form.get("client_assertion_type"):
            refused = self._check_assertion(request, tenant, app)
            if refused is not None:
                return refused
        elif not form.get("client_secret"):
            return self.aad_error(401, "invalid_client", 7000218,
                                  "The request body must contain the following parameter: "
                                  "'client_assertion' or 'client_secret'.")
        elif form.get("client_secret") != app["secret"]:
            return self.aad_error(401, "invalid_client", 7000215,
                                  "Invalid client secret provided. Ensure the secret being sent "
                                  "in the request is the client secret value, not the client "
                                  f"secret ID, for a secret added to app '{form['client_id']}'.")
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return self.aad_error(400, "invalid_scope", 1002012,
                                  f"The provided value for scope {scope} is not valid. Client "
                                  "credential flows must have a scope value with /.default "
                                  "suffixed to the resource identifier (application ID URI).")
        access_token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(
            self._rng.randbytes(48)).decode().rstrip("=")
        self.tokens[access_token] = {"client_id": form["client_id"], "roles": set(app["roles"]),
                                     "expires_at": time.monotonic() + TOKEN_LIFETIME}
        return self.json_response({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                                   "ext_expires_in": TOKEN_LIFETIME,
                                   "access_token": access_token})

    def _check_assertion(self, request: Request, tenant: str,
                         app: dict[str, Any]) -> Response | None:
        """None when the client assertion is valid for this app and this token endpoint."""
        form = request.form
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return self.aad_error(400, "invalid_request", 700025,
                                  "The client_assertion_type is not supported; use "
                                  f"{ASSERTION_TYPE}.")
        audience = request.base_url  # the token endpoint invoked, as the client names it
        try:
            verify_assertion(form.get("client_assertion", ""), keys=app.get("keys", {}),
                             key_headers=("x5t#S256", "x5t"), audience=audience,
                             client_id=form["client_id"])
        except AssertionRefused as exc:
            return self.aad_error(*assertion_error(exc, form["client_id"]))
        return None


def assertion_error(exc: AssertionRefused, client_id: str) -> tuple[int, str, int, str]:
    """Entra's answer to a refused client assertion: (status, error, AADSTS code, text)."""
    used = _hex_thumbprint(exc.key_ref)
    keys = (f"Thumbprint of key used by client: '{used}', Please visit the Azure Portal, "
            "Graph Explorer or directly use MS Graph to see configured keys for app Id "
            f"'{client_id}'.")
    if exc.reason == "unknown_key":
        return 401, "invalid_client", 700027, ("Client assertion contains an invalid "
                                               f"signature. [Reason - The key was not found., "
                                               f"{keys}]")
    if exc.reason == "bad_signature":
        return 401, "invalid_client", 700027, (
            "Client assertion contains an invalid signature. [Reason - The provided signature "
            f"value did not match the expected signature value., {keys}]")
    if exc.reason == "issuer":
        return 401, "invalid_client", 700021, ("Client assertion application identifier "
                                               "doesn't match 'client_id' parameter.")
    if exc.reason == "audience":
        return 401, "invalid_client", 700023, ("Client assertion audience claim does not "
                                               "match Realm issuer.")
    if exc.reason in ("expired", "not_yet_valid"):
        return 401, "invalid_client", 700024, ("Client assertion is not within its valid time "
                                               f"range. ({exc.detail})")
    return 401, "invalid_client", 50027, "JWT token is invalid or malformed."


def _hex_thumbprint(ref: str) -> str:
    """A base64url thumbprint as Entra prints it: upper-case hex."""
    try:
        return base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4)).hex().upper()
    except ValueError:
        return ref
