"""The MLflow mock's core: server state, test helpers, who is calling and whether they may, the
version answers every route group shares, and the OAuth token endpoint.

The mock as a whole (see server.MlflowMock) is a stateful MLflow tracking server: the model
registry, the artifact proxy and (with `auth="basic"`) the basic-auth app, on MLflow's real
paths with its real bodies.

The plugin is tested against a real `mlflow server`; this mock exists for what a real server
will not do on demand (429, 5xx, malformed bodies, expiring OAuth tokens) and for the demo.
Its behaviour copies what MLflow 3.17 answers: JSON bodies for GET parameters in the query and
for everything else in the body (DELETE included), `{"error_code", "message"}` errors, tags and
aliases left out of a version when empty and aliases left out of search results, an unknown
alias as 400, HTML 404 pages for routes the server does not have, 401 as an HTML page with
`WWW-Authenticate: Basic` and 403 as the text "Permission denied".
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
ERROR_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "RESOURCE_DOES_NOT_EXIST", 409: "RESOURCE_ALREADY_EXISTS",
               429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
               503: "TEMPORARILY_UNAVAILABLE"}
AUTH_MODES = ("none", "basic", "token", "oauth")
OAUTH_CLIENT_ID = "crownguard-m2m"
ADMIN = "admin"
ADMIN_PASSWORD = "mock-admin-password"  # noqa: S105 - a mock's fixed test credential
NOT_AUTHENTICATED = ("You are not authenticated. Please see "
                     "https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow "
                     "on how to authenticate.")
CAN = {"READ": {"read"}, "USE": {"read"}, "EDIT": {"read", "update"},
       "MANAGE": {"read", "update", "manage"}, "DENY": set(), "NO_PERMISSIONS": set()}
HTML_404 = ("<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
            "<p>The requested URL was not found on the server.</p>\n")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class MlflowMockBase(MockServer):
    """State and plumbing shared by every MLflow route group."""

    vendor = "mlflow"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, auth: str = "none",
                 auth_api: str = "v3"):
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}")
        if auth_api not in ("v3", "legacy"):
            raise ValueError("auth_api must be 'v3' or 'legacy'")
        self.auth = auth
        self.auth_api = auth_api
        super().__init__(host, port)

    # state --------------------------------------------------------------------------------------

    def seed_versions(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: registered model versions with their files, aliases and tags."""
        for item in items:
            target = int(item.get("version", 1))
            while len(self.models.get(item["name"], {}).get("versions", {})) < target - 1:
                self.add_version(item["name"], {})  # earlier versions, no files
            files = {path: str(text).encode()
                     for path, text in (item.get("files") or {}).items()}
            self.add_version(item["name"], files, aliases=tuple(item.get("aliases") or ()),
                             tags=item.get("tags") or {})

    def reset_state(self) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, bytes] = {}
        self.users: dict[str, dict[str, Any]] = {
            ADMIN: {"id": 1, "password": ADMIN_PASSWORD, "is_admin": True}}
        self.grants: dict[tuple[str, str], str] = {}
        self.default_permission = "READ"
        self.static_token = "mlflow-static-" + secrets.token_hex(8)
        self.client_secret = "m2m-secret-" + secrets.token_hex(8)
        self.issued_tokens: dict[str, bool] = {}  # token -> still valid
        self.token_requests = 0

    def connection_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"base_url": self.base_url}
        if self.auth == "basic":
            settings.update(username=ADMIN, password=ADMIN_PASSWORD)
        elif self.auth == "token":
            settings["token"] = self.static_token
        elif self.auth == "oauth":
            settings.update(client_id=OAUTH_CLIENT_ID, client_secret=self.client_secret)
        return settings

    def error_body(self, status: int) -> Any:
        return {"error_code": ERROR_CODES.get(status, "INTERNAL_ERROR"),
                "message": f"injected HTTP {status}"}

    # helpers for tests and the demo -------------------------------------------------------------

    def add_version(self, name: str, files: dict[str, bytes] | None = None, *,
                    aliases: tuple[str, ...] = (), tags: dict[str, str] | None = None,
                    status: str = "READY", pending_polls: int = 0) -> str:
        """Register a new version of `name` (created if needed) whose artifacts are `files`.

        With `pending_polls`, the version reads PENDING_REGISTRATION that many times before it
        is `status` (registration is asynchronous in MLflow)."""
        with self.state_lock:
            now = int(time.time() * 1000)
            model = self.models.setdefault(name, {"created": now, "updated": now,
                                                  "aliases": {}, "versions": {}})
            number = str(len(model["versions"]) + 1)
            run_id = uuid.uuid4().hex
            root = f"1/{run_id}/artifacts/model"
            for path, content in (files or {}).items():
                self.artifacts[f"{root}/{path}"] = content
            model["versions"][number] = {
                "name": name, "version": number, "creation_timestamp": now,
                "last_updated_timestamp": now, "current_stage": "None", "description": "",
                "source": f"mlflow-artifacts:/{root}", "run_id": run_id, "status": status,
                "run_link": "", "user_id": "", "tags": dict(tags or {}),
                "_pending_polls": pending_polls}
            for alias in aliases:
                model["aliases"][alias] = number
            return number

    def tag_model(self, name: str, tags: dict[str, str]) -> None:
        """Set registered-model tags (sensitivity, owner) on `name`, which must exist."""
        with self.state_lock:
            self.models[name].setdefault("tags", {}).update(tags)

    def version(self, name: str, version: str) -> dict[str, Any]:
        return dict(self.models[name]["versions"][version])

    def aliases(self, name: str) -> dict[str, str]:
        return dict(self.models[name]["aliases"])

    def add_user(self, username: str, password: str, *, is_admin: bool = False) -> None:
        with self.state_lock:
            self.users[username] = {"id": len(self.users) + 1, "password": password,
                                    "is_admin": is_admin}

    def expire_tokens(self) -> None:
        """Every OAuth token issued so far stops working (as after their expiry)."""
        with self.state_lock:
            self.issued_tokens = dict.fromkeys(self.issued_tokens, False)

    # answers ------------------------------------------------------------------------------------

    def mlflow_error(self, status: int, message: str, code: str | None = None) -> Response:
        codes = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED",
                 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST"}
        return _json({"error_code": code or codes.get(status, "BAD_REQUEST"),
                      "message": message}, status)

    def params(self, request: Request, *names: str) -> dict[str, str] | Response:
        """Required parameters from the query (GET) or the JSON body (everything else)."""
        source: Any = request.args if request.method == "GET" else (
            request.get_json(silent=True) or {})
        values = {}
        for name in names:
            value = source.get(name)
            if value in (None, ""):
                return self.mlflow_error(400, f"Missing value for required parameter '{name}'. "
                                              "See the API docs for more information about "
                                              "request parameters.")
            values[name] = str(value)
        return values

    # who and whether ----------------------------------------------------------------------------

    def caller(self, request: Request) -> str | Response:
        """The calling user (ADMIN for token, OAuth and no-auth servers), or the 401."""
        auth = request.authorization
        if self.auth == "none":
            return ADMIN
        if self.auth == "basic":
            user = self.users.get(auth.username or "") if auth and auth.type == "basic" else None
            if auth is None or user is None or user["password"] != auth.password:
                return Response(NOT_AUTHENTICATED, status=401,
                                content_type="text/html; charset=utf-8",
                                headers={"WWW-Authenticate": 'Basic realm="mlflow"'})
            return str(auth.username)
        token = auth.token if auth is not None and auth.type == "bearer" else None
        valid = (token == self.static_token if self.auth == "token"
                 else bool(token and self.issued_tokens.get(token)))
        if not valid:
            return self.mlflow_error(401, "Invalid access token.", "UNAUTHENTICATED")
        return ADMIN

    def permission(self, username: str, model: str) -> str:
        return self.grants.get((username, model), self.default_permission)

    def guard(self, request: Request, model: str | None, need: str) -> Response | None:
        """None when the caller may do `need` (read, update, manage) on `model`."""
        who = self.caller(request)
        if isinstance(who, Response):
            return who
        if self.users.get(who, {}).get("is_admin") or self.auth != "basic":
            return None
        if model is None:
            allowed = need == "read"
        elif need == "admin":
            allowed = False
        else:
            allowed = need in CAN.get(self.permission(who, model), set())
        return None if allowed else Response("Permission denied", status=403,
                                             content_type="text/html; charset=utf-8")

    # versions -----------------------------------------------------------------------------------

    def find_version(self, name: str, version: str) -> dict[str, Any] | Response:
        if not version.isdigit():
            return self.mlflow_error(400, f"Parameter 'version' must be an integer, got "
                                          f"'{version}'.")
        found = self.models.get(name, {}).get("versions", {}).get(version)
        if found is None:
            return self.mlflow_error(404, f"Model Version (name={name}, version={version}) "
                                          "not found")
        return found

    def version_json(self, version: dict[str, Any], *, with_aliases: bool = True) -> dict[str, Any]:
        body = {k: v for k, v in version.items() if k != "tags" and not k.startswith("_")}
        if version["_pending_polls"] > 0:
            version["_pending_polls"] -= 1
            body["status"] = "PENDING_REGISTRATION"
        if version["tags"]:
            body["tags"] = [{"key": k, "value": v} for k, v in version["tags"].items()]
        aliases = sorted(a for a, v in self.models[version["name"]]["aliases"].items()
                         if v == version["version"])
        if with_aliases and aliases:
            body["aliases"] = aliases
        return body

    # OAuth (Databricks-style M2M) ---------------------------------------------------------------

    @route("POST", "/oidc/v1/token")
    def issue_token(self, request: Request) -> Response:
        self.token_requests += 1
        auth = request.authorization
        if (auth is None or auth.username != OAUTH_CLIENT_ID
                or auth.password != self.client_secret
                or request.form.get("grant_type") != "client_credentials"):
            return self.json_response({"error": "invalid_client",
                                       "error_description": "Client authentication failed"}, 401)
        token = "dapi-oauth-" + secrets.token_hex(12)
        self.issued_tokens[token] = True
        return self.json_response({"access_token": token, "token_type": "Bearer",
                                   "expires_in": 3600, "scope": request.form.get("scope", "")})
