"""A stateful mock of the Hugging Face Hub API: repo info and settings, gated-repo access
requests (paged with `Link: rel="next"`), tokens with a read or write role.

Its answers follow huggingface_hub's `hf_api.py` and `utils/_http.py`: errors carry
`X-Error-Code` / `X-Error-Message` and a JSON `{"error": ...}` body; a repo a token may not see
is `RepoNotFound` (401 without a valid token, 404 with one); rate limits use the IETF draft
`RateLimit` header. The tests also drive it with the official `huggingface_hub` client.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug import Request, Response

from crownguard.engine import MockServer, RecordedCall, route

KINDS = ("models", "datasets", "spaces")
REPO = "/api/{kind}/{namespace}/{name}"
STATUSES = ("pending", "accepted", "rejected")
OWNER = "soc-bot"
ORG = "acme-ml"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubMock(MockServer):
    """Hugging Face Hub: /api/{models,datasets,spaces}/{namespace}/{name}[...]."""

    vendor = "huggingface"

    def reset_state(self) -> None:
        self.repos: dict[tuple[str, str], dict[str, Any]] = {}
        self.write_token = "hf_write_" + secrets.token_hex(12)
        self.read_token = "hf_read_" + secrets.token_hex(12)
        self.tokens: dict[str, dict[str, Any]] = {
            self.write_token: {"user": OWNER, "role": "write", "orgs": [ORG]},
            self.read_token: {"user": OWNER, "role": "read", "orgs": [ORG]}}
        self.page_size = 50
        self.throttled = 0
        self.throttle_reset = 1.0
        self._throttle_lock = threading.Lock()

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "token": self.write_token}

    def error_body(self, status: int) -> Any:
        return {"error": f"injected HTTP {status}"}

    def not_found(self, request: Request) -> Response:
        return self.hub_error(404, "Sorry, we can't find the page you are looking for.")

    # helpers for tests and the demo -------------------------------------------------------------

    def add_repo(self, repo_id: str, *, kind: str = "models", private: bool = False,
                 gated: str | bool = False, files: tuple[str, ...] = ("config.json",),
                 accepted: tuple[str, ...] = (), pending: tuple[str, ...] = ()) -> None:
        namespace = repo_id.split("/", 1)[0]
        with self.state_lock:
            self.repos[(kind, repo_id)] = {
                "_id": secrets.token_hex(12), "id": repo_id, "author": namespace,
                "sha": secrets.token_hex(20), "lastModified": _now(), "createdAt": _now(),
                "private": private, "gated": gated, "disabled": False, "downloads": 0,
                "likes": 0, "tags": [], "siblings": [{"rfilename": f} for f in files],
                "requests": {}}
            for user in accepted:
                self.request_access(repo_id, user, "accepted", kind=kind)
            for user in pending:
                self.request_access(repo_id, user, "pending", kind=kind)

    def request_access(self, repo_id: str, user: str, status: str = "pending", *,
                       kind: str = "models") -> None:
        with self.state_lock:
            self.repos[(kind, repo_id)]["requests"][user] = {
                "status": status, "timestamp": _now(), "requestId": secrets.token_hex(8)}

    def repo(self, repo_id: str, kind: str = "models") -> dict[str, Any]:
        return self.repos[(kind, repo_id)]

    def throttle(self, times: int, reset_seconds: float = 1.0) -> None:
        """The next `times` requests get the Hub's 429 (RateLimit header, no Retry-After)."""
        with self._throttle_lock:
            self.throttled = times
            self.throttle_reset = reset_seconds

    # answers ------------------------------------------------------------------------------------

    def hub_error(self, status: int, message: str, code: str | None = None) -> Response:
        headers = {"X-Error-Message": message, "X-Request-Id": f"Root={secrets.token_hex(8)}"}
        if code:
            headers["X-Error-Code"] = code
        return self.json_response({"error": message}, status, headers)

    def dispatch(self, request: Request) -> Response:
        with self._throttle_lock:
            throttled = self.throttled > 0
            if throttled:
                self.throttled -= 1
        if not throttled:
            return super().dispatch(request)
        self.calls.append(RecordedCall(request.method, request.path,
                                       {k: request.args.getlist(k) for k in request.args},
                                       dict(request.headers), request.get_data()))
        response = self.hub_error(429, "You have exceeded our hourly quotas for action "
                                       "api. Retry later.")
        response.headers["RateLimit"] = f'"api";r=0;t={self.throttle_reset:g}'
        response.headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        return response

    def token_of(self, request: Request) -> dict[str, Any] | Response | None:
        """The caller's token record; None when anonymous; the 401 for a bad token."""
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        token = self.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None:
            return self.hub_error(401, "Invalid credentials in Authorization header")
        return token

    def find(self, request: Request, kind: str, repo_id: str,
             write: bool) -> dict[str, Any] | Response:
        """The repo if the caller may see it (and change it, for `write`)."""
        token = self.token_of(request)
        if isinstance(token, Response):
            return token
        repo = self.repos.get((kind, repo_id)) if kind in KINDS else None
        member = token is not None and repo_id.split("/", 1)[0] in (
            [token["user"], *token["orgs"]])
        if repo is None or (repo["private"] and not member):
            return self.hub_error(404 if token else 401, "Repository not found", "RepoNotFound")
        if write and token is None:
            return self.hub_error(401, "Invalid credentials in Authorization header")
        if write and (not member or token is None or token["role"] != "write"):
            return self.hub_error(403, "You don't have the rights to change the settings of "
                                       "this repo")
        return repo

    # repos --------------------------------------------------------------------------------------

    @route("GET", "/api/whoami-v2")
    def whoami(self, request: Request) -> Any:
        token = self.token_of(request)
        if token is None:
            return self.hub_error(401, "Invalid credentials in Authorization header")
        if isinstance(token, Response):
            return token
        return {"type": "user", "name": token["user"],
                "orgs": [{"name": o, "roleInOrg": "admin"} for o in token["orgs"]],
                "auth": {"type": "access_token",
                         "accessToken": {"displayName": "crownguard", "role": token["role"]}}}

    @route("GET", REPO)
    def repo_info(self, request: Request, kind: str, namespace: str, name: str) -> Any:
        repo = self.find(request, kind, f"{namespace}/{name}", write=False)
        if isinstance(repo, Response):
            return repo
        return {k: v for k, v in repo.items() if k != "requests"}

    @route("PUT", REPO + "/settings")
    def settings(self, request: Request, kind: str, namespace: str, name: str) -> Any:
        repo = self.find(request, kind, f"{namespace}/{name}", write=True)
        if isinstance(repo, Response):
            return repo
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body:
            return self.hub_error(400, "Invalid settings payload")
        visibility = body.get("visibility")
        if "private" in body:  # what older clients send
            visibility = "private" if body["private"] else "public"
        if visibility not in (None, "private", "public"):
            return self.hub_error(400, f"Invalid visibility '{visibility}' for this repo type")
        if "gated" in body and body["gated"] not in ("auto", "manual", False):
            return self.hub_error(400, "gated must be 'auto', 'manual' or false")
        if visibility is not None:
            repo["private"] = visibility == "private"
        if "gated" in body:
            repo["gated"] = body["gated"]
        repo["lastModified"] = _now()
        return {"private": repo["private"], "gated": repo["gated"]}

    # gated access -------------------------------------------------------------------------------

    @route("GET", REPO + "/user-access-request/{status}")
    def list_requests(self, request: Request, kind: str, namespace: str, name: str,
                      status: str) -> Any:
        repo = self.find(request, kind, f"{namespace}/{name}", write=True)
        if isinstance(repo, Response):
            return repo
        if status not in STATUSES:
            return self.hub_error(400, f"Invalid status '{status}'")
        if not repo["gated"]:
            return self.hub_error(400, "This repository is not gated")
        matching = [(user, r) for user, r in sorted(repo["requests"].items())
                    if r["status"] == status]
        start = int(request.args.get("cursor", "0") or 0)
        page = matching[start:start + self.page_size]
        headers = {}
        if start + self.page_size < len(matching):
            query = urlencode({"cursor": start + self.page_size})
            headers["Link"] = f'<{self.base_url}{request.path}?{query}>; rel="next"'
        body = [{"user": {"user": user, "fullname": user.title(), "avatarUrl": ""},
                 "requestId": r["requestId"], "status": r["status"], "timestamp": r["timestamp"]}
                for user, r in page]
        return self.json_response(body, 200, headers)

    @route("POST", REPO + "/user-access-request/handle")
    def handle_request(self, request: Request, kind: str, namespace: str, name: str) -> Any:
        repo = self.find(request, kind, f"{namespace}/{name}", write=True)
        if isinstance(repo, Response):
            return repo
        body = request.get_json(silent=True) or {}
        if body.get("status") not in STATUSES:
            return self.hub_error(400, "status must be pending, accepted or rejected")
        user = body.get("user")
        if user is None and body.get("requestId"):
            user = next((u for u, r in repo["requests"].items()
                         if r["requestId"] == body["requestId"]), None)
        if user not in repo["requests"]:
            return self.hub_error(404, "Access request not found")
        repo["requests"][user].update(status=body["status"], timestamp=_now())
        return {}

    @route("POST", REPO + "/user-access-request/grant")
    def grant(self, request: Request, kind: str, namespace: str, name: str) -> Any:
        repo = self.find(request, kind, f"{namespace}/{name}", write=True)
        if isinstance(repo, Response):
            return repo
        user = (request.get_json(silent=True) or {}).get("user")
        if not user:
            return self.hub_error(400, "user is required")
        if repo["requests"].get(user, {}).get("status") == "accepted":
            return self.hub_error(400, "User already has access to the repo")
        repo["requests"][user] = {"status": "accepted", "timestamp": _now(),
                                  "requestId": secrets.token_hex(8)}
        return {"user": user, "status": "accepted", "time": time.time()}
