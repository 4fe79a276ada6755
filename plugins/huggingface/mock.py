"""A stateful mock of the Hugging Face Hub API: repo info and settings, gated-repo access
requests (paged with `Link: rel="next"`), tokens with a read or write role.

Its answers follow huggingface_hub's `hf_api.py` and `utils/_http.py`: errors carry
`X-Error-Code` / `X-Error-Message` and a JSON `{"error": ...}` body; a repo a token may not see
is `RepoNotFound` (401 without a valid token, 404 with one); rate limits use the IETF draft
`RateLimit` header. The tests also drive it with the official `huggingface_hub` client.
"""

from __future__ import annotations

import hashlib
import re
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


RANGE = re.compile(r"bytes=(\d+)-(\d*)")
# The Hub's default .gitattributes stores these in LFS.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".npy",
                ".npz", ".pkl", ".joblib", ".msgpack", ".tflite", ".model", ".zip", ".tar.gz")


def _git_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def _tree_entry(path: str, content: bytes) -> dict[str, Any]:
    """A file of the tree listing: LFS files carry `lfs.oid`, the SHA-256 of their bytes,
    and `oid`, the git blob id of their pointer file."""
    if not path.endswith(LFS_SUFFIXES):
        return {"type": "file", "oid": _git_oid(content), "size": len(content), "path": path}
    sha256 = hashlib.sha256(content).hexdigest()
    pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\n"
               f"size {len(content)}\n").encode()
    return {"type": "file", "oid": _git_oid(pointer), "size": len(content), "path": path,
            "lfs": {"oid": sha256, "size": len(content), "pointerSize": len(pointer)}}


def _public(repo: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in repo.items() if k not in ("requests", "files")}


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
        self.lfs_redirect: str | None = None  # huggingface.co sends LFS downloads elsewhere
        self.throttled = 0
        self.throttle_reset = 1.0
        self._throttle_lock = threading.Lock()

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "token": self.write_token}

    def error_body(self, status: int) -> Any:
        return {"error": f"injected HTTP {status}"}

    def not_found(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/", 4)
        if request.method in ("GET", "HEAD") and len(parts) == 5 and parts[2] == "resolve":
            with self.state_lock:
                return self.resolve(request, f"{parts[0]}/{parts[1]}", parts[3], parts[4])
        return self.hub_error(404, "Sorry, we can't find the page you are looking for.")

    # helpers for tests and the demo -------------------------------------------------------------

    def add_repo(self, repo_id: str, *, kind: str = "models", private: bool = False,
                 gated: str | bool = False, files: tuple[str, ...] = ("config.json",),
                 accepted: tuple[str, ...] = (), pending: tuple[str, ...] = (),
                 contents: dict[str, bytes] | None = None) -> None:
        """A repo; `contents` (path -> bytes) gives its files bytes to list and download
        (model weights by extension are LFS files, as the Hub's default .gitattributes)."""
        namespace = repo_id.split("/", 1)[0]
        if contents is not None:
            files = tuple(sorted(contents))
        with self.state_lock:
            self.repos[(kind, repo_id)] = {
                "_id": secrets.token_hex(12), "id": repo_id, "author": namespace,
                "sha": secrets.token_hex(20), "lastModified": _now(), "createdAt": _now(),
                "private": private, "gated": gated, "disabled": False, "downloads": 0,
                "likes": 0, "tags": [], "siblings": [{"rfilename": f} for f in files],
                "requests": {}, "files": dict(contents or {f: b"" for f in files})}
            for user in accepted:
                self.request_access(repo_id, user, "accepted", kind=kind)
            for user in pending:
                self.request_access(repo_id, user, "pending", kind=kind)

    def request_access(self, repo_id: str, user: str, status: str = "pending", *,
                       kind: str = "models", email: str | None = None,
                       fields: dict[str, Any] | None = None) -> None:
        """A user's request, as the gate form sends it (`fields`: the form's answers; `email`:
        shared with the repo's organisation)."""
        with self.state_lock:
            self.repos[(kind, repo_id)]["requests"][user] = {
                "status": status, "timestamp": _now(), "requestId": secrets.token_hex(8),
                "email": email, "fields": dict(fields or {}), "rejectionReason": None}

    def access_status(self, repo_id: str, user: str, kind: str = "models") -> str | None:
        request = self.repos[(kind, repo_id)]["requests"].get(user)
        return None if request is None else str(request["status"])

    # scenario seeding -----------------------------------------------------------------------

    def seed_repos(self, items: list[dict[str, Any]]) -> None:
        """`{repo_id, kind, private, gated, files}`."""
        for item in items:
            self.add_repo(str(item["repo_id"]), kind=item.get("kind", "models"),
                          private=bool(item.get("private", False)),
                          gated=item.get("gated", "manual"),
                          files=tuple(item.get("files") or ("config.json",)))

    def seed_access_requests(self, items: list[dict[str, Any]]) -> None:
        """`{repo_id, user, status, email, fields}` (the repo must exist)."""
        for item in items:
            self.request_access(str(item["repo_id"]), str(item["user"]),
                                item.get("status", "pending"), kind=item.get("kind", "models"),
                                email=item.get("email"), fields=item.get("fields"))

    def commit(self, repo_id: str, contents: dict[str, bytes], *,
               kind: str = "models") -> None:
        """A new commit: files added or replaced, a new `sha` and `lastModified`."""
        with self.state_lock:
            repo = self.repos[(kind, repo_id)]
            repo["files"].update(contents)
            repo["siblings"] = [{"rfilename": f} for f in sorted(repo["files"])]
            repo["sha"], repo["lastModified"] = secrets.token_hex(20), _now()

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
        return _public(repo)

    # listings and files (what the fingerprint index reads) --------------------------------------

    @route("GET", "/api/models")
    def list_models(self, request: Request) -> Any:
        token = self.token_of(request)
        if isinstance(token, Response):
            return token
        author = request.args.get("author")
        mine = [token["user"], *token["orgs"]] if token else []
        found = [r for (kind, _), r in sorted(self.repos.items()) if kind == "models"
                 and (author is None or r["author"] == author)
                 and (not r["private"] or r["author"] in mine)]
        full = request.args.get("full") in ("true", "True", "1")
        body = [_public(r) if full else {k: r[k] for k in (
            "_id", "id", "author", "private", "gated", "downloads", "likes", "tags")}
            for r in found]
        return self.paged_response(request, body)

    def paged_response(self, request: Request, items: list[Any]) -> Response:
        """One page of `items`, with the Hub's `Link: <...cursor=N>; rel="next"`."""
        start = int(request.args.get("cursor", "0") or 0)
        page = items[start:start + self.page_size]
        headers = {}
        if start + self.page_size < len(items):
            query = {k: v for k, v in request.args.items() if k != "cursor"}
            query["cursor"] = str(start + self.page_size)
            headers["Link"] = f'<{self.base_url}{request.path}?{urlencode(query)}>; rel="next"'
        return self.json_response(page, 200, headers)

    @route("GET", "/api/{kind}/{namespace}/{name}/tree/{revision}")
    def tree(self, request: Request, kind: str, namespace: str, name: str,
             revision: str) -> Any:
        repo = self.find(request, kind, f"{namespace}/{name}", write=False)
        if isinstance(repo, Response):
            return repo
        if revision not in ("main", repo["sha"]):
            return self.hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        recursive = request.args.get("recursive") in ("true", "True", "1")
        entries: dict[str, dict[str, Any]] = {}
        for path, content in sorted(repo["files"].items()):
            folder, _, _rest = path.partition("/")
            if not recursive and "/" in path:
                entries.setdefault(folder, {"type": "directory", "oid": _git_oid(folder.encode()),
                                            "size": 0, "path": folder})
                continue
            if recursive:
                parts = path.split("/")[:-1]
                for depth in range(1, len(parts) + 1):
                    sub = "/".join(parts[:depth])
                    entries.setdefault(sub, {"type": "directory", "oid": _git_oid(sub.encode()),
                                             "size": 0, "path": sub})
            entries[path] = _tree_entry(path, content)
        return self.paged_response(request, [entries[k] for k in sorted(entries)])

    def resolve(self, request: Request, repo_id: str, revision: str, path: str) -> Response:
        """`/{repo}/resolve/{revision}/{path}` (GET or HEAD): the file, a `Range: bytes=a-b`
        part with 206; `ETag` (the SHA-256 of an LFS file), `X-Repo-Commit` as the Hub sends.
        A gated repo's files need a token whose user was accepted (or is a member)."""
        repo = self.find(request, "models", repo_id, write=False)
        if isinstance(repo, Response):
            return repo
        token = self.token_of(request)
        member = isinstance(token, dict) and repo["author"] in [token["user"], *token["orgs"]]
        if repo["gated"] and not member:
            user = token.get("user") if isinstance(token, dict) else None
            if user is None:
                return self.hub_error(401, f"Access to model {repo_id} is restricted. You must "
                                           "be authenticated to access it.", "GatedRepo")
            if repo["requests"].get(user, {}).get("status") != "accepted":
                return self.hub_error(403, f"Access to model {repo_id} is restricted and you "
                                           "are not in the authorized list.", "GatedRepo")
        if revision not in ("main", repo["sha"]):
            return self.hub_error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        content = repo["files"].get(path)
        if content is None:
            return self.hub_error(404, "Entry not found", "EntryNotFound")
        if self.lfs_redirect and path.endswith(LFS_SUFFIXES):
            return Response(status=302, headers={
                "Location": f"{self.lfs_redirect.rstrip('/')}/{repo_id}/resolve/{revision}/"
                            f"{path}?X-Amz-Signature={secrets.token_hex(8)}"})
        entry = _tree_entry(path, content)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": repo["sha"], "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(content))})
        wanted = RANGE.fullmatch(request.headers.get("Range", "").strip())
        if wanted and content:
            first = int(wanted.group(1))
            last = min(int(wanted.group(2) or len(content) - 1), len(content) - 1)
            if first > last:
                return self.hub_error(416, "Requested range not satisfiable")
            headers["Content-Range"] = f"bytes {first}-{last}/{len(content)}"
            return Response(content[first:last + 1], status=206, headers=headers,
                            content_type="application/octet-stream")
        return Response(content, headers=headers, content_type="application/octet-stream")

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
        body = [{"user": {"user": user, "fullname": user.title(), "avatarUrl": "",
                          **({"email": r["email"]} if r.get("email") else {})},
                 "requestId": r["requestId"], "status": r["status"], "timestamp": r["timestamp"],
                 **({"fields": r["fields"]} if r.get("fields") else {})}
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
        reason = body.get("rejectionReason")
        if reason is not None and not isinstance(reason, str):
            return self.hub_error(400, "rejectionReason must be a string")
        repo["requests"][user].update(
            status=body["status"], timestamp=_now(),
            rejectionReason=reason if body["status"] == "rejected" else None)
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
                                  "requestId": secrets.token_hex(8), "email": None,
                                  "fields": {}, "rejectionReason": None}
        return {"user": user, "status": "accepted", "time": time.time()}
