"""The Falcon mock's core: tenant state, OAuth2 clients and bearer checks, the envelope.

Route groups (hosts, Real Time Response) are mixins over this class (server.FalconMock is
their sum), so each module stays about one part of the API.

Same paths, methods, status codes and envelope as the real API (falconpy's endpoint table):
OAuth2 client credentials (201 on /oauth2/token, 403 for a refused client, 401
`access denied, invalid bearer token`), per-client API scopes (403 `access denied,
authorization failed`), FQL host queries paged with offset/limit, asynchronous containment
(`containment_pending` for a number of host-record reads, then `contained`) and Real Time
Response sessions whose commands complete after a number of status polls and act on a small
per-host file system. Every answer carries X-Cs-Traceid and the X-Ratelimit headers; a 429
also carries X-Ratelimit-Retryafter (epoch seconds).
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, parse_retry_after, route

from .model import Command, MockFile, MockHost, Session

ALL_SCOPES = frozenset({"devices:read", "devices:write", "real-time-response:read",
                        "real-time-response:write"})
DEFAULT_CLIENT_ID = "cg-demo-falcon-client"
DEFAULT_CLIENT_SECRET = "cg-demo-falcon-secret-7Qw9"  # noqa: S105 - a mock's own credential
TOKEN_LIFETIME = 1799
STATUS_MESSAGES = {400: "Bad Request", 401: "access denied, invalid bearer token",
                   403: "access denied, authorization failed", 404: "Not Found",
                   409: "Conflict", 429: "API rate limit exceeded.",
                   500: "Internal Server Error", 502: "Bad Gateway",
                   503: "Service Unavailable"}


class FalconMockBase(MockServer):
    """State and plumbing shared by every Falcon route group."""

    vendor = "falcon"

    # state -------------------------------------------------------------------------------------

    def seed_hosts(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: hosts with their folders and files."""
        for item in items:
            fields = {k: item[k] for k in ("platform_name", "os_version", "local_ip",
                                           "last_seen", "status") if k in item}
            if "platform" in item:
                fields["platform_name"] = item["platform"]
            device = self.add_host(item["hostname"], device_id=item.get("device_id"), **fields)
            for folder in item.get("folders") or ():
                self.add_folder(device, folder)
            for spec in item.get("files") or ():
                file = self.add_file(device, spec["path"],
                                     str(spec.get("content", "model")).encode())
                if spec.get("sha256"):  # stand in for bytes the scenario does not carry
                    file.sha256 = spec["sha256"].lower()

    def reset_state(self) -> None:
        self.clients: dict[str, tuple[str, frozenset[str]]] = {
            DEFAULT_CLIENT_ID: (DEFAULT_CLIENT_SECRET, ALL_SCOPES)}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.hosts: dict[str, MockHost] = {}
        self.rtr_sessions: dict[str, Session] = {}
        self.rtr_commands: dict[str, Command] = {}
        self.containment_polls = 2  # host-record reads a pending containment takes
        self.rtr_polls = 1  # status polls before an RTR command reports complete
        self.token_max_uses: int | None = None  # every token dies after this many API calls
        self._expire_countdown: int | None = None
        self.send_retry_after_header = True  # False: only X-Ratelimit-Retryafter on a 429
        self._seed()

    def _seed(self) -> None:
        alice = self.add_host("WS-ALICE-01", device_id="4e1f0c3a9b7d4c21a5f08e6d2b3c7a91",
                              local_ip="10.20.1.15", last_seen="2026-11-28T08:41:12Z")
        self.add_file(alice, r"C:\Users\alice\Downloads\corp-brain-v3.safetensors",
                      b"demo model weights: corp-brain v3")
        self.add_folder(alice, r"C:\ProgramData\Crownguard\Quarantine")
        bob = self.add_host("MBP-BOB-02", device_id="9a8b7c6d5e4f40312a1b0c9d8e7f6a5b",
                            platform_name="Mac", os_version="macOS 15.1",
                            local_ip="10.20.4.33", last_seen="2026-11-28T08:12:55Z")
        self.add_file(bob, "/Users/bob/models/llama-ft.gguf", b"demo model weights: llama-ft")
        self.add_folder(bob, "/var/crownguard/quarantine")
        self.add_host("gpu-train-07", device_id="0c1d2e3f4a5b46c7d8e9f0a1b2c3d4e5",
                      platform_name="Linux", os_version="Ubuntu 22.04",
                      local_ip="10.30.0.7", last_seen="2026-11-28T07:59:01Z")

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET, "poll_interval_seconds": 0.01,
                "max_wait_seconds": 30}

    # helpers for tests and the demo --------------------------------------------------------------

    def add_host(self, hostname: str, *, device_id: str | None = None,
                 **fields: Any) -> str:
        with self.state_lock:
            host = MockHost(device_id or uuid.uuid4().hex, hostname, **fields)
            self.hosts[host.device_id] = host
            return host.device_id

    def add_file(self, device_id: str, path: str, content: bytes = b"model") -> MockFile:
        with self.state_lock:
            file = MockFile.of(content)
            self.hosts[device_id].add_file(path, file)
            return file

    def add_folder(self, device_id: str, path: str) -> None:
        with self.state_lock:
            host = self.hosts[device_id]
            host.folders.add(host.key(path))

    def file_on(self, device_id: str, path: str) -> MockFile | None:
        with self.state_lock:
            return self.hosts[device_id].file(path)

    def add_client(self, client_id: str, secret: str,
                   scopes: set[str] | frozenset[str] = ALL_SCOPES) -> None:
        with self.state_lock:
            self.clients[client_id] = (secret, frozenset(scopes))

    def expire_tokens(self) -> None:
        """Every issued token is now unknown: the next call gets a 401."""
        with self.state_lock:
            self.tokens.clear()

    def expire_tokens_after(self, calls: int) -> None:
        """Once: the tokens issued so far die after `calls` more authorised API calls (the
        expiry of a token in the middle of a run)."""
        with self.state_lock:
            self._expire_countdown = calls

    def set_status(self, device_id: str, status: str, pending_reads: int = 0) -> None:
        with self.state_lock:
            self.hosts[device_id].status = status
            self.hosts[device_id].pending_reads = pending_reads

    # the vendor's envelope ---------------------------------------------------------------------

    @staticmethod
    def meta(**extra: Any) -> dict[str, Any]:
        return {"query_time": 0.004, "powered_by": "crowdstrike-api-gateway",
                "trace_id": str(uuid.uuid4()), **extra}

    def envelope(self, resources: list[Any], status: int = 200, *,
                 errors: list[dict[str, Any]] | None = None, **meta: Any) -> Response:
        return self.json_response({"meta": self.meta(**meta), "resources": resources,
                                   "errors": errors or []}, status)

    def fail(self, status: int, message: str | None = None, code: int | None = None) -> Response:
        return self.json_response(
            {"meta": self.meta(), "resources": [],
             "errors": [{"code": code or status, "message": message or STATUS_MESSAGES.get(
                 status, "error")}]}, status)

    def error_body(self, status: int) -> Any:
        return {"meta": self.meta(), "resources": [],
                "errors": [{"code": status, "message": STATUS_MESSAGES.get(status, "error")}]}

    def not_found(self, request: Request) -> Response:
        return self.fail(404)

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        response.headers["X-Cs-Traceid"] = str(uuid.uuid4())
        response.headers["X-Cs-Region"] = "us-1"
        response.headers["X-Ratelimit-Limit"] = "6000"
        response.headers["X-Ratelimit-Remaining"] = "0" if response.status_code == 429 else "5999"
        if response.status_code == 429:
            # Delta-seconds or an HTTP date (an unreadable one: a second from now).
            seconds = parse_retry_after(response.headers.get("Retry-After")) or 1.0
            response.headers["X-Ratelimit-Retryafter"] = str(math.ceil(time.time() + seconds))
            if not self.send_retry_after_header:
                del response.headers["Retry-After"]
        return response

    # auth --------------------------------------------------------------------------------------

    @route("POST", "/oauth2/token")
    def token(self, request: Request) -> Response:
        client_id = request.form.get("client_id", "")
        secret = request.form.get("client_secret", "")
        known = self.clients.get(client_id)
        if not client_id or not secret:
            return self.fail(400, "client_id and client_secret are required")
        if known is None or known[0] != secret:
            return self.fail(403, "access denied, invalid client")
        token = uuid.uuid4().hex + uuid.uuid4().hex
        self.tokens[token] = {"client_id": client_id, "scopes": known[1], "uses": 0}
        return self.json_response({"access_token": token, "token_type": "bearer",
                                   "expires_in": TOKEN_LIFETIME}, 201)

    @route("POST", "/oauth2/revoke")
    def revoke(self, request: Request) -> Response:
        self.tokens.pop(request.form.get("token", ""), None)
        return self.envelope([])

    def authorize(self, request: Request, scope: str) -> Response | None:
        """None when the bearer token is valid and holds `scope`, else the vendor's answer."""
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if self._expire_countdown is not None:
            if self._expire_countdown <= 0:
                self._expire_countdown = None
                self.tokens.clear()
            else:
                self._expire_countdown -= 1
        grant = self.tokens.get(token)
        if grant is None:
            return self.fail(401)
        grant["uses"] += 1
        if self.token_max_uses is not None and grant["uses"] > self.token_max_uses:
            del self.tokens[token]
            return self.fail(401)
        if scope not in grant["scopes"]:
            return self.fail(403)
        return None
