"""The Incydr mock's core: tenant state, API-client OAuth, bearer checks and error bodies.

Route groups (file events, sessions and alerts, actors and watchlists) are mixins over this
class, so each module stays about one part of the API.

Authentication is Incydr's: `POST /v1/oauth` with HTTP Basic (API client id and secret, no
body needed) answers `{"access_token", "token_type": "bearer", "expires_in": 900}`; the token is
a signed JWT whose payload carries `tenantUid` (the SDK reads the tenant from it). Every other
call needs `Authorization: Bearer <token>`; an unknown or expired token is a 401, a client
without the permission a route needs gets a 403.

Error bodies: Incydr's v1/v2 services are gRPC-gateway style (FieldMask `paths` on PATCH,
snake_case query parameters), so errors are modelled as a google.rpc.Status,
`{"code": <grpc code>, "message": ..., "details": []}`. The reference does not document the
shape; this is inferred, see docs/plugins/incydr.md.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route

from . import seed

TOKEN_LIFETIME_SECONDS = 900
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 501: 12, 502: 14,
              503: 14, 504: 4}
REASONS = {400: "invalid argument", 401: "unauthenticated", 403: "permission denied",
           404: "not found", 409: "already exists", 429: "too many requests",
           500: "internal error", 502: "bad gateway", 503: "service unavailable",
           504: "gateway timeout"}


@dataclass
class TokenGrant:
    client_id: str
    expires_at: float


class IncydrMockBase(MockServer):
    """State and plumbing shared by every Incydr route group."""

    vendor = "incydr"

    def reset_state(self) -> None:
        self.tenant_id = seed.TENANT_ID
        self.clients: dict[str, seed.ApiClient] = {
            seed.DEFAULT_CLIENT_ID: seed.ApiClient(seed.DEFAULT_CLIENT_ID,
                                                   seed.DEFAULT_CLIENT_SECRET)}
        self.tokens: dict[str, TokenGrant] = {}
        self._signing_key = secrets.token_bytes(32)
        self.samples = seed.load_samples()
        self.file_events: list[dict[str, Any]] = copy.deepcopy(list(self.samples.values()))
        self.actors = seed.actors()
        self.watchlists = seed.watchlists()
        self.sessions, self.session_events, self.alerts = seed.sessions_and_alerts(
            self.samples, self.actors)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # connections file ---------------------------------------------------------------------

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "client_id": seed.DEFAULT_CLIENT_ID,
                "client_secret": seed.DEFAULT_CLIENT_SECRET}

    # error bodies ---------------------------------------------------------------------------

    def error_body(self, status: int) -> Any:
        return {"code": GRPC_CODES.get(status, 2), "message": REASONS.get(status, "error"),
                "details": []}

    def error(self, status: int, message: str, headers: dict[str, str] | None = None
              ) -> Response:
        return self.json_response({"code": GRPC_CODES.get(status, 2), "message": message,
                                   "details": []}, status, headers)

    def not_found(self, request: Request) -> Response:
        return self.error(404, f"no route for {request.method} {request.path}")

    # OAuth and bearer tokens ----------------------------------------------------------------

    @route("POST", "/v1/oauth")
    def oauth(self, request: Request) -> Any:
        client = self.basic_client(request)
        if client is None:
            return self.error(401, "Unauthorized: invalid API client id or secret",
                              {"WWW-Authenticate": 'Basic realm="code42"'})
        return {"access_token": self.issue_token(client.client_id), "token_type": "bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS}

    def issue_token(self, client_id: str) -> str:
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT"}
        payload = {"sub": client_id, "tenantUid": self.tenant_id, "iat": now,
                   "exp": now + TOKEN_LIFETIME_SECONDS, "jti": uuid.uuid4().hex}
        signing_input = ".".join(_b64(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, payload))
        signature = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(signature)}"
        self.tokens[token] = TokenGrant(client_id, time.time() + TOKEN_LIFETIME_SECONDS)
        return token

    def basic_client(self, request: Request) -> seed.ApiClient | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.secret, secret):
            return None
        return client

    def caller(self, request: Request, permission: str) -> seed.ApiClient | Response:
        """The API client behind the bearer token, or the 401/403 to answer with."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires_at <= time.time():
            return self.error(401, "Unauthorized: the bearer token is missing, invalid or "
                                   "expired")
        client = self.clients.get(grant.client_id)
        if client is None:
            return self.error(401, "Unauthorized: the API client no longer exists")
        if permission not in client.permissions:
            return self.error(403, f"Forbidden: the API client lacks the '{permission}' "
                                   "permission")
        return client

    # helpers for tests and the demo ---------------------------------------------------------

    def add_client(self, client_id: str, secret: str,
                   permissions: set[str] | frozenset[str] | None = None) -> None:
        """Register another API client, e.g. one without the permissions a call needs."""
        with self.state_lock:
            self.clients[client_id] = seed.ApiClient(
                client_id, secret, frozenset(seed.ALL_PERMISSIONS if permissions is None
                                             else permissions))

    def expire_tokens(self) -> None:
        """Make every issued token expire now (the next call answers 401)."""
        with self.state_lock:
            for grant in self.tokens.values():
                grant.expires_at = 0.0

    def members_of(self, watchlist_id: str) -> dict[str, int]:
        """Effective members of a watchlist (actor id -> added, epoch ms): included actors and
        actors of included departments, less excluded actors."""
        watchlist = self.watchlists.get(watchlist_id)
        if watchlist is None:
            return {}
        members = dict(watchlist.included_actors)
        for department, added in watchlist.included_departments.items():
            for actor in self.actors.values():
                if actor.get("department") == department:
                    members.setdefault(actor["actorId"], added)
        for actor_id in watchlist.excluded_actors:
            members.pop(actor_id, None)
        return members

    def now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def json_body(self, request: Request) -> dict[str, Any] | Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.error(400, "the request body must be a JSON object")
        return body


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as Incydr's ISO 8601 UTC text."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
