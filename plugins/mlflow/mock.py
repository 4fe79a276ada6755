"""A stateful mock of an MLflow tracking server: the model registry, the artifact proxy and
(with `auth="basic"`) the basic-auth app, on MLflow's real paths with its real bodies.

The plugin is tested against a real `mlflow server`; this mock exists for what a real server
will not do on demand (429, 5xx, malformed bodies, expiring OAuth tokens) and for the demo.
Its behaviour copies what MLflow 3.17 answers: JSON bodies for GET parameters in the query and
for everything else in the body (DELETE included), `{"error_code", "message"}` errors, tags and
aliases left out of a version when empty and aliases left out of search results, an unknown
alias as 400, HTML 404 pages for routes the server does not have, 401 as an HTML page with
`WWW-Authenticate: Basic` and 403 as the text "Permission denied".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
import uuid
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route

from .mock_auth import ADMIN, ADMIN_PASSWORD, HTML_404, AuthAppRoutes

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
ERROR_CODES = {400: "INVALID_PARAMETER_VALUE", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "RESOURCE_DOES_NOT_EXIST", 409: "RESOURCE_ALREADY_EXISTS",
               429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
               503: "TEMPORARILY_UNAVAILABLE"}
NAME_FILTER = re.compile(r"""^\s*name\s*=\s*(?:'([^']*)'|"([^"]*)")\s*$""")
AUTH_MODES = ("none", "basic", "token", "oauth")
OAUTH_CLIENT_ID = "crownguard-m2m"


class MlflowMock(AuthAppRoutes, MockServer):
    """MLflow tracking server: registry, artifact proxy, optional auth app and OAuth."""

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

    def not_found(self, request: Request) -> Response:
        if request.path.startswith(ARTIFACTS + "/") and request.method == "GET":
            with self.state_lock:
                return self.download_artifact(request, request.path[len(ARTIFACTS) + 1:])
        return Response(HTML_404, status=404, content_type="text/html; charset=utf-8")

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

    # registry -----------------------------------------------------------------------------------

    @route("GET", "/health")
    def health(self, request: Request) -> Response:
        return Response("OK", content_type="text/plain")

    @route("GET", f"{API}/model-versions/get")
    def get_version(self, request: Request) -> Any:
        args = self.params(request, "name", "version")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "read")
        found = denied or self.find_version(args["name"], args["version"])
        return found if isinstance(found, Response) else {"model_version":
                                                          self.version_json(found)}

    @route("GET", f"{API}/model-versions/get-download-uri")
    def download_uri(self, request: Request) -> Any:
        args = self.params(request, "name", "version")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "read")
        found = denied or self.find_version(args["name"], args["version"])
        return found if isinstance(found, Response) else {"artifact_uri": found["source"]}

    @route("GET", f"{API}/model-versions/search")
    def search_versions(self, request: Request) -> Any:
        denied = self.guard(request, None, "read")
        if denied:
            return denied
        name = None
        if request.args.get("filter"):
            match = NAME_FILTER.match(request.args["filter"])
            if not match:
                return self.mlflow_error(400, "the mock understands only name = '...' filters")
            name = match.group(1) if match.group(1) is not None else match.group(2)
        try:
            size = int(request.args.get("max_results", 10000))
            token = request.args.get("page_token")
            offset = int(json.loads(base64.b64decode(token))["offset"]) if token else 0
        except (ValueError, KeyError, TypeError, binascii.Error):
            return self.mlflow_error(400, "Invalid page token or max_results")
        matches = [v for model_name in sorted(self.models)
                   for _, v in sorted(self.models[model_name]["versions"].items(),
                                      key=lambda kv: -int(kv[0]))
                   if name is None or model_name == name]
        page = matches[offset:offset + size]
        body: dict[str, Any] = {"model_versions": [self.version_json(v, with_aliases=False)
                                                   for v in page]}
        if offset + size < len(matches):
            body["next_page_token"] = base64.b64encode(
                json.dumps({"offset": offset + size}).encode()).decode()
        return body

    @route("POST", f"{API}/model-versions/set-tag")
    def set_tag(self, request: Request) -> Any:
        args = self.params(request, "name", "version", "key")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "update")
        found = denied or self.find_version(args["name"], args["version"])
        if isinstance(found, Response):
            return found
        found["tags"][args["key"]] = str((request.get_json(silent=True) or {}).get("value", ""))
        return {}

    @route("DELETE", f"{API}/model-versions/delete-tag")
    def delete_tag(self, request: Request) -> Any:
        args = self.params(request, "name", "version", "key")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "update")
        found = denied or self.find_version(args["name"], args["version"])
        if isinstance(found, Response):
            return found
        found["tags"].pop(args["key"], None)
        return {}

    @route("GET", f"{API}/registered-models/get")
    def get_model(self, request: Request) -> Any:
        args = self.params(request, "name")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "read")
        if denied:
            return denied
        model = self.models.get(args["name"])
        if model is None:
            return self.mlflow_error(404, f"Registered Model with name={args['name']} not found")
        return {"registered_model": {
            "name": args["name"], "creation_timestamp": model["created"],
            "last_updated_timestamp": model["updated"],
            "aliases": [{"alias": a, "version": v} for a, v in sorted(model["aliases"].items())]}}

    @route("GET", f"{API}/registered-models/alias")
    def get_by_alias(self, request: Request) -> Any:
        args = self.params(request, "name", "alias")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "read")
        if denied:
            return denied
        version = self.models.get(args["name"], {}).get("aliases", {}).get(args["alias"])
        if version is None:
            return self.mlflow_error(400, f"Registered model alias {args['alias']} not found.")
        return {"model_version": self.version_json(self.models[args["name"]]["versions"][version])}

    @route("POST", f"{API}/registered-models/alias")
    def set_alias(self, request: Request) -> Any:
        args = self.params(request, "name", "alias", "version")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "update")
        found = denied or self.find_version(args["name"], args["version"])
        if isinstance(found, Response):
            return found
        self.models[args["name"]]["aliases"][args["alias"]] = args["version"]
        return {}

    @route("DELETE", f"{API}/registered-models/alias")
    def delete_alias(self, request: Request) -> Any:
        args = self.params(request, "name", "alias")
        if isinstance(args, Response):
            return args
        denied = self.guard(request, args["name"], "update")
        if denied:
            return denied
        self.models.get(args["name"], {}).get("aliases", {}).pop(args["alias"], None)
        return {}

    # artifact proxy -----------------------------------------------------------------------------

    @route("GET", ARTIFACTS)
    def list_artifacts(self, request: Request) -> Any:
        denied = self.guard(request, None, "read")
        if denied:
            return denied
        prefix = request.args.get("path", "").strip("/")
        prefix = f"{prefix}/" if prefix else ""
        entries: dict[str, dict[str, Any]] = {}
        for path, content in self.artifacts.items():
            if not path.startswith(prefix):
                continue
            head, _, rest = path[len(prefix):].partition("/")
            entries[head] = ({"path": head, "is_dir": True} if rest else
                             {"path": head, "is_dir": False, "file_size": len(content)})
        return {"files": [entries[k] for k in sorted(entries)]} if entries else {}

    def download_artifact(self, request: Request, path: str) -> Response:
        denied = self.guard(request, None, "read")
        if denied:
            return denied
        content = self.artifacts.get(path)
        if content is None:
            return self.mlflow_error(404, f"No such artifact: '{path}'")
        return Response(content, content_type="application/octet-stream",
                        headers={"Content-Disposition":
                                 f"attachment; filename={path.rsplit('/', 1)[-1]}"})

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
