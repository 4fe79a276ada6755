"""ScimMock: a SCIM 2.0 service provider (RFC 7643/7644) under `/scim/v2` with Users, filters,
startIndex/count paging, PatchOp, versioned resources (ETag, If-Match, 412) and SCIM error
bodies, all as `application/scim+json`.

Knobs for the differences between real providers: `patch_status` (200 with the resource, or
204), `accepts_path` (False: refuse `path` in PATCH operations, as some providers do) and
`page_size` (the service's own cap on `count`).
"""

from __future__ import annotations

import functools
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route

from .filters import InvalidFilter, compile_filter

BASE = "/scim/v2"
TOKEN = "scim-mock-bearer-5d2f9a7c41e8b036"  # noqa: S105 - the mock's own token
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"
PATCHABLE = {"active", "displayName", "externalId", "title"}

Handler = Callable[..., Any]


def requires(write: bool) -> Callable[[Handler], Handler]:
    """Check the bearer token (and that it may write, for changes)."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        def handler(self: ScimMock, request: Request, **params: str) -> Any:
            denied = self.authorize(request, write)
            return denied if denied is not None else func(self, request, **params)

        return handler

    return wrap


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ScimMock(MockServer):
    """A SCIM service; `connection_settings()` gives base_url (with /scim/v2) and token."""

    vendor = "scim"

    def reset_state(self) -> None:
        self._rng = random.Random(17)
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, bool] = {TOKEN: True}  # token -> may write
        self.patch_status = 200
        self.accepts_path = True
        self.page_size = 100
        for user_name, given, family in (("alice.chen@acme.example", "Alice", "Chen"),
                                         ("bob.ruiz@acme.example", "Bob", "Ruiz")):
            self.add_user(user_name, given_name=given, family_name=family)

    # helpers for tests and the demo --------------------------------------------------------------

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": f"{self.base_url}{BASE}", "token": TOKEN}

    def add_user(self, user_name: str, *, email: str | None = None, active: bool = True,
                 given_name: str = "Test", family_name: str = "User",
                 external_id: str | None = None) -> str:
        with self.state_lock:
            user_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            stamp = _now()
            self.users[user_id] = {
                "schemas": [USER_SCHEMA], "id": user_id, "externalId": external_id,
                "userName": user_name,
                "name": {"givenName": given_name, "familyName": family_name,
                         "formatted": f"{given_name} {family_name}"},
                "displayName": f"{given_name} {family_name}",
                "emails": [{"value": email or user_name, "type": "work", "primary": True}],
                "active": active,
                "meta": {"resourceType": "User", "created": stamp, "lastModified": stamp,
                         "version": 'W/"1"'},
            }
            return user_id

    def user(self, user_name: str) -> dict[str, Any]:
        for user in self.users.values():
            if user["userName"].lower() == user_name.lower():
                return user
        raise KeyError(user_name)

    def touch(self, user_id: str) -> None:
        """Change the user's version, as another client's update would."""
        with self.state_lock:
            self._bump(self.users[user_id])

    def add_token(self, token: str, *, write: bool = True) -> None:
        with self.state_lock:
            self.tokens[token] = write

    def revoke_token(self, token: str = TOKEN) -> None:
        with self.state_lock:
            self.tokens.pop(token, None)

    # SCIM shapes ---------------------------------------------------------------------------------

    def scim_response(self, body: Any, status: int = 200,
                      headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers, content_type=SCIM_JSON)

    def scim_error(self, status: int, detail: str, scim_type: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
        return self.scim_response(self.error_payload(status, detail, scim_type), status, headers)

    @staticmethod
    def error_payload(status: int, detail: str, scim_type: str | None = None) -> Any:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status),
                                "detail": detail}
        if scim_type:
            body["scimType"] = scim_type
        return body

    def error_body(self, status: int) -> Any:
        details = {401: "Authentication failure", 403: "Operation not permitted",
                   404: "Resource not found", 429: "Too many requests",
                   500: "Internal server error", 503: "Service unavailable"}
        return self.error_payload(status, details.get(status, f"HTTP {status}"))

    def not_found(self, request: Request) -> Response:
        return self.scim_error(404, f"Endpoint {request.path} not found")

    def authorize(self, request: Request, write: bool) -> Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in self.tokens:
            return self.scim_error(401, "Authentication failure",
                                   headers={"WWW-Authenticate": 'Bearer realm="scim"'})
        if write and not self.tokens[token.strip()]:
            return self.scim_error(403, "The token may not modify Users")
        return None

    def render(self, user: dict[str, Any]) -> dict[str, Any]:
        meta = {**user["meta"], "location": f"{self.base_url}{BASE}/Users/{user['id']}"}
        return {k: v for k, v in {**user, "meta": meta}.items() if v is not None}

    @staticmethod
    def _bump(user: dict[str, Any]) -> None:
        number = int(user["meta"]["version"].strip('W/"')) + 1
        user["meta"].update(version=f'W/"{number}"', lastModified=_now())

    def _user_or_404(self, user_id: str) -> dict[str, Any] | Response:
        if user_id not in self.users:
            return self.scim_error(404, f"Resource {user_id} not found")
        return self.users[user_id]

    # endpoints -----------------------------------------------------------------------------------

    @route("GET", f"{BASE}/ServiceProviderConfig")
    def service_provider_config(self, request: Request) -> Response:
        return self.scim_response({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0,
                                                   "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": self.page_size},
            "changePassword": {"supported": False}, "sort": {"supported": False},
            "etag": {"supported": True},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                                       "description": "Authentication with a bearer token"}]})

    @route("GET", f"{BASE}/Users")
    @requires(write=False)
    def list_users(self, request: Request) -> Response:
        records = list(self.users.values())
        if "filter" in request.args:
            try:
                predicate = compile_filter(request.args["filter"])
            except InvalidFilter as exc:
                return self.scim_error(400, f"Invalid filter: {exc}", "invalidFilter")
            records = [r for r in records if predicate(r)]
        try:
            start = max(1, int(request.args.get("startIndex", 1)))
            count = max(0, int(request.args.get("count", self.page_size)))
        except ValueError:
            return self.scim_error(400, "startIndex and count must be integers", "invalidValue")
        page = records[start - 1:start - 1 + min(count, self.page_size)]
        return self.scim_response({"schemas": [LIST_SCHEMA], "totalResults": len(records),
                                   "startIndex": start, "itemsPerPage": len(page),
                                   "Resources": [self.render(u) for u in page]})

    @route("GET", f"{BASE}/Users/{{user_id}}")
    @requires(write=False)
    def get_user(self, request: Request, user_id: str) -> Response:
        user = self._user_or_404(user_id)
        if isinstance(user, Response):
            return user
        return self.scim_response(self.render(user), headers={"ETag": user["meta"]["version"]})

    @route("PATCH", f"{BASE}/Users/{{user_id}}")
    @requires(write=True)
    def patch_user(self, request: Request, user_id: str) -> Response:
        user = self._user_or_404(user_id)
        if isinstance(user, Response):
            return user
        if request.mimetype not in (SCIM_JSON, "application/json"):
            return self.scim_error(415, f"Unsupported media type {request.mimetype}")
        match = request.headers.get("If-Match")
        if match and match not in ("*", user["meta"]["version"]):
            return self.scim_error(412, "Failed to update. Resource changed on the server.")
        body = request.get_json(silent=True, force=True)
        if not isinstance(body, dict) or PATCH_SCHEMA not in (body.get("schemas") or []):
            return self.scim_error(400, "Request is unparsable or violates the PatchOp schema",
                                   "invalidSyntax")
        operations = body.get("Operations")
        if not isinstance(operations, list) or not operations:
            return self.scim_error(400, "Operations must be a non-empty array", "invalidSyntax")
        changes: dict[str, Any] = {}
        for operation in operations:
            problem = self._read_operation(operation, changes)
            if problem is not None:
                return problem
        if any(user.get(k) != v for k, v in changes.items()):
            user.update(changes)
            self._bump(user)
        headers = {"ETag": user["meta"]["version"]}
        if self.patch_status == 204:
            return Response(status=204, headers=headers)
        return self.scim_response(self.render(user), headers=headers)

    def _read_operation(self, operation: Any, changes: dict[str, Any]) -> Response | None:
        """Collect one PatchOp operation's changes into `changes`, or return the error."""
        if not isinstance(operation, dict):
            return self.scim_error(400, "Each operation must be an object", "invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace"):
            return self.scim_error(400, f"Unsupported operation '{operation.get('op')}'",
                                   "invalidSyntax" if op != "remove" else "mutability")
        path = operation.get("path")
        value = operation.get("value")
        if path is not None:
            if not self.accepts_path:
                return self.scim_error(400, "The 'path' attribute is not supported",
                                       "invalidPath")
            if path not in PATCHABLE:
                return self.scim_error(400, f"Attribute '{path}' cannot be patched",
                                       "invalidPath")
            value = {path: value}
        if not isinstance(value, dict):
            return self.scim_error(400, "value must be an object when path is absent",
                                   "invalidValue")
        for name, item in value.items():
            if name not in PATCHABLE:
                return self.scim_error(400, f"Attribute '{name}' cannot be patched",
                                       "mutability")
            if name == "active" and not isinstance(item, bool):
                return self.scim_error(400, "active must be a boolean", "invalidValue")
            changes[name] = item
        return None
