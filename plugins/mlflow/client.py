"""MlflowRegistryClient: MLflow's REST API (model registry, proxied artifacts) over the shared
HTTP layer.

MLflow answers errors as `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`, takes
GET parameters in the query string and everything else (DELETE included) as a JSON body, and
pages searches with `next_page_token`. A 404 from a route the server does not have (an auth
endpoint on a server without the auth app) is Flask's HTML page, not that JSON: `route_missing`
tells the two apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import requests

from crownguard.engine import (
    Auth,
    BadResponse,
    BasicAuth,
    BodyStream,
    ConfigError,
    HeaderAuth,
    NoAuth,
    NotFoundError,
    OAuth2ClientCredentials,
    TransportError,
    VendorClient,
    VendorError,
    read_head,
)

REGISTRY = "api/2.0/mlflow"
ARTIFACTS = "api/2.0/mlflow-artifacts/artifacts"
DEFAULT_PAGE_SIZE = 200
DEFAULT_SCOPE = "all-apis"
CHUNK_BYTES = 1 << 20
AUTH_METHODS = (("username/password", "username"), ("token", "token"),
                ("client credentials", "client_id"))


def error_code(response: requests.Response) -> str | None:
    """The `error_code` of MLflow's JSON error body, None for anything else (an HTML page)."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error_code") if isinstance(body, dict) else None
    return str(code) if code is not None else None


def route_missing(response: requests.Response) -> bool:
    """A 404 for the route itself (Flask's HTML page; Databricks' ENDPOINT_NOT_FOUND), not for
    a user or model the route looked up."""
    return response.status_code == 404 and error_code(response) in (None, "ENDPOINT_NOT_FOUND")


class MlflowRegistryClient(VendorClient):
    """The MLflow tracking server's registry and artifact endpoints."""

    vendor = "mlflow"
    connection_type = "mlflow"

    def make_auth(self) -> Auth:
        given = [label for label, key in AUTH_METHODS if self.settings.get(key)]
        if len(given) > 1:
            raise ConfigError(f"connection 'mlflow' gives {' and '.join(given)}: choose one way "
                              "to authenticate")
        if self.settings.get("username"):
            return BasicAuth(str(self.settings["username"]), self.settings["password"])
        if self.settings.get("token"):
            return HeaderAuth(self.settings["token"], scheme="Bearer")
        if self.settings.get("client_id"):
            token_url = self.settings.get("token_url") or self.url("oidc/v1/token")
            # Databricks' M2M OAuth takes the client credentials as HTTP Basic.
            return OAuth2ClientCredentials(str(token_url), str(self.settings["client_id"]),
                                           self.settings["client_secret"],
                                           scope=str(self.settings.get("scope", DEFAULT_SCOPE)),
                                           style="basic")
        return NoAuth()

    def error_message(self, body: Any, response: requests.Response) -> str:
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            code = body.get("error_code")
            return f"{body['message']} [{code}]" if code else body["message"]
        return super().error_message(body, response)

    # plumbing -----------------------------------------------------------------------------------

    def call(self, method: str, path: str, *, operation: str, params: dict[str, Any] | None = None,
             body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One registry call; the answer must be a JSON object (MLflow answers `{}` at least)."""
        answer = self.request_json(method, f"{REGISTRY}/{path}", operation=operation,
                                   params=params, json_body=body)
        if answer is None:
            return {}
        if not isinstance(answer, dict):
            raise BadResponse("expected a JSON object", vendor=self.vendor, operation=operation)
        return answer

    def member(self, answer: dict[str, Any], key: str, operation: str) -> dict[str, Any]:
        value = answer.get(key)
        if not isinstance(value, dict):
            raise BadResponse(f"the answer has no '{key}' object", vendor=self.vendor,
                              operation=operation)
        return value

    # registry -----------------------------------------------------------------------------------

    def get_version(self, name: str, version: str, operation: str) -> dict[str, Any]:
        answer = self.call("GET", "model-versions/get", operation=operation,
                           params={"name": name, "version": version})
        return self.member(answer, "model_version", operation)

    def version_for_alias(self, name: str, alias: str, operation: str) -> dict[str, Any]:
        try:
            answer = self.call("GET", "registered-models/alias", operation=operation,
                               params={"name": name, "alias": alias})
        except VendorError as exc:
            # MLflow answers an unknown alias with 400 INVALID_PARAMETER_VALUE.
            if exc.status == 400 and "not found" in str(exc):
                raise NotFoundError(f"model '{name}' has no alias '{alias}'", vendor=self.vendor,
                                    operation=operation, status=exc.status) from None
            raise
        return self.member(answer, "model_version", operation)

    def alias_targets(self, name: str, operation: str) -> dict[str, str]:
        """Every alias of a registered model and the version it points at."""
        answer = self.call("GET", "registered-models/get", operation=operation,
                           params={"name": name})
        model = self.member(answer, "registered_model", operation)
        return {str(a["alias"]): str(a["version"]) for a in model.get("aliases") or []
                if isinstance(a, dict) and "alias" in a and "version" in a}

    def set_version_tag(self, name: str, version: str, key: str, value: str,
                        operation: str) -> None:
        self.call("POST", "model-versions/set-tag", operation=operation,
                  body={"name": name, "version": version, "key": key, "value": value})

    def delete_version_tag(self, name: str, version: str, key: str, operation: str) -> None:
        """MLflow answers 200 whether or not the tag existed."""
        self.call("DELETE", "model-versions/delete-tag", operation=operation,
                  body={"name": name, "version": version, "key": key})

    def set_alias(self, name: str, alias: str, version: str, operation: str) -> None:
        """Setting an alias moves it when it points elsewhere."""
        self.call("POST", "registered-models/alias", operation=operation,
                  body={"name": name, "alias": alias, "version": version})

    def delete_alias(self, name: str, alias: str, operation: str) -> None:
        """MLflow answers 200 whether or not the alias existed."""
        self.call("DELETE", "registered-models/alias", operation=operation,
                  body={"name": name, "alias": alias})

    def search_versions(self, filter_string: str | None, limit: int,
                        operation: str) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` versions matching the filter, every page followed; and whether more
        were left."""
        page_size = min(int(self.settings.get("page_size", DEFAULT_PAGE_SIZE)), limit)
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            params: dict[str, Any] = {"max_results": page_size}
            if filter_string:
                params["filter"] = filter_string
            if token:
                params["page_token"] = token
            answer = self.call("GET", "model-versions/search", operation=operation, params=params)
            page = answer.get("model_versions") or []
            if not isinstance(page, list):
                raise BadResponse("'model_versions' is not a list", vendor=self.vendor,
                                  operation=operation)
            found.extend(v for v in page if isinstance(v, dict))
            token = answer.get("next_page_token") or None
            if len(found) >= limit:
                return found[:limit], bool(token) or len(found) > limit
            if not token:
                return found, False
            if token in seen:
                raise BadResponse("the server returned the same page token twice",
                                  vendor=self.vendor, operation=operation)
            seen.add(token)

    def download_uri(self, name: str, version: str, operation: str) -> str:
        answer = self.call("GET", "model-versions/get-download-uri", operation=operation,
                           params={"name": name, "version": version})
        uri = answer.get("artifact_uri")
        if not isinstance(uri, str) or not uri:
            raise BadResponse("the answer has no artifact_uri", vendor=self.vendor,
                              operation=operation)
        return uri

    # proxied artifacts (`mlflow server --serve-artifacts`, the default) -------------------------

    def list_artifacts(self, path: str, operation: str) -> list[dict[str, Any]]:
        answer = self.request_json("GET", ARTIFACTS, operation=operation, params={"path": path})
        if answer is None:
            return []
        files = answer.get("files", []) if isinstance(answer, dict) else None
        if not isinstance(files, list):
            raise BadResponse("the artifact listing has no 'files' list", vendor=self.vendor,
                              operation=operation)
        return [f for f in files if isinstance(f, dict)]

    def artifact_digest(self, path: str, operation: str, head_bytes: int = 0
                        ) -> tuple[int, str, bytes]:
        """Stream one artifact file once: its size in bytes, its SHA-256 and its first
        `head_bytes` bytes (for the structural fingerprint: no second download).

        Models are large: the body is hashed chunk by chunk and never held in memory. Like
        `request`, a 401 refreshes an OAuth token once and sends again.
        """
        with self._artifact_stream(path, operation) as body:
            return self._digest(body, operation, head_bytes)

    def read_model_file_head(self, path: str, limit: int, operation: str) -> bytes:
        """The first `limit` bytes of one artifact file, streamed: the rest is never read."""
        with self._artifact_stream(path, operation) as body:
            return read_head(body, limit)

    @contextmanager
    def _artifact_stream(self, path: str, operation: str) -> Iterator[BodyStream]:
        url = self.url(f"{ARTIFACTS}/{quote(path, safe='/')}")
        refreshed = False
        while True:
            headers = {"Accept": "*/*"}
            self.auth.apply(headers, self)
            # Streamed: no size limit (nothing is held), the body bounded by the step's deadline.
            with self.stream("GET", url, operation=operation, headers=headers) as body:
                response = body.response
                if response.status_code == 401 and not refreshed and self.auth.invalidate():
                    refreshed = True
                    continue
                if not 200 <= response.status_code < 300:
                    raise self.error_for(response, operation)
                yield body
                return

    def _digest(self, body: BodyStream, operation: str,
                head_bytes: int = 0) -> tuple[int, str, bytes]:
        digest = hashlib.sha256()
        size = 0
        head = bytearray()
        try:
            for chunk in body.chunks(CHUNK_BYTES):
                digest.update(chunk)
                size += len(chunk)
                if len(head) < head_bytes:
                    head += chunk[:head_bytes - len(head)]
                if self.ctx is not None:
                    self.ctx.check_deadline()
        except requests.RequestException:
            raise self._redacted(TransportError(
                f"the download broke off after {size} bytes", vendor=self.vendor,
                operation=operation, status=body.response.status_code)) from None
        return size, digest.hexdigest(), bytes(head)
