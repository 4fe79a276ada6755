"""The Slack mock's core: workspace state, test helpers, tokens and scopes, argument parsing,
Slack's `ok`/`error` answers and the conversation store. Route groups (users, conversations,
chat, oauth) and the interactivity helpers are mixins over this class; server.SlackMock sums
them.

The mock as a whole is a stateful mock of the Slack Web API methods the plugin calls.

Real paths (`/api/<method>`), bearer-token auth with scopes, HTTP 200 with `ok: false` and
Slack's error codes (`users_not_found`, `invalid_auth`, `missing_scope` with `needed`,
`not_in_channel`, `token_expired`...), HTTP 404 `unknown_method`, HTTP 429 `ratelimited` with
Retry-After (injected), cursor pagination with `response_metadata.next_cursor`, message metadata,
and token rotation through `oauth.v2.access`. `click()` and `submit_view()` build signed
interactivity requests exactly as Slack sends them to an app.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer

ALL_SCOPES = frozenset({"chat:write", "im:write", "users:read", "users:read.email",
                        "channels:read", "groups:read", "im:read", "channels:history",
                        "groups:history", "im:history"})
HISTORY_SCOPE = {"public": "channels:history", "private": "groups:history", "im": "im:history"}
_ERROR_FOR_STATUS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


class SlackMockBase(MockServer):
    """State and plumbing shared by every Slack route group."""

    vendor = "slack"
    TEAM_ID = "T0CROWN01"
    TEAM_DOMAIN = "crownguard-demo"
    APP_ID = "A0CROWN01"
    BOT_USER_ID = "U0CGBOT001"
    BOT_ID = "B0CGBOT001"
    CLIENT_ID = "1000000001.2000000002"

    def seed_users(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: workspace members by e-mail."""
        for user in items:
            self.add_user(user["email"], user.get("name", user["email"]),
                          locale=user.get("locale"))

    def seed_channels(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: channels, private or public, with or without the bot."""
        for channel in items:
            self.add_channel(channel["name"], private=channel.get("private", False),
                             member=channel.get("member", True))

    def reset_state(self) -> None:
        self.bot_token = "xoxb-1000000001-" + secrets.token_hex(12)
        self.signing_secret = secrets.token_hex(16)
        self.client_secret = secrets.token_hex(16)
        self.tokens: dict[str, dict[str, Any]] = {
            self.bot_token: {"scopes": set(ALL_SCOPES), "expired": False}}
        self.refresh_tokens: set[str] = set()
        self.users: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        self._serial = itertools.count(1)
        self._last_ts = 0.0
        self.add_channel("soc-alerts")

    def connection_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url + "/api", "token": self.bot_token,
                "signing_secret": self.signing_secret}

    def error_body(self, status: int) -> Any:
        return {"ok": False, "error": _ERROR_FOR_STATUS.get(status, "fatal_error")}

    def not_found(self, request: Request) -> Response:
        method = request.path.rsplit("/", 1)[-1]
        return self._reply({"ok": False, "error": "unknown_method", "req_method": method}, 404)

    # helpers for tests and the demo -----------------------------------------------------------

    def add_user(self, email: str, real_name: str, *, locale: str | None = None,
                 deleted: bool = False) -> str:
        with self.state_lock:
            user_id = self._id("U")
            name = email.split("@", 1)[0]
            self.users[user_id] = {
                "id": user_id, "team_id": self.TEAM_ID, "name": name, "real_name": real_name,
                "deleted": deleted, "is_bot": False, "is_app_user": False,
                "updated": int(time.time()), "tz": "Europe/Berlin", "locale": locale,
                "profile": {"email": email, "real_name": real_name, "display_name": name,
                            "real_name_normalized": real_name, "display_name_normalized": name,
                            "avatar_hash": secrets.token_hex(6), "title": "", "phone": "",
                            "skype": "", "status_text": "", "status_emoji": "", "fields": None,
                            "team": self.TEAM_ID},
            }
            return user_id

    def add_channel(self, name: str, *, private: bool = False, member: bool = True,
                    archived: bool = False) -> str:
        with self.state_lock:
            channel_id = self._id("G" if private else "C")
            self.conversations[channel_id] = {
                "id": channel_id, "name": name, "kind": "private" if private else "public",
                "is_archived": archived, "members": {self.BOT_USER_ID} if member else set(),
                "created": int(time.time()), "messages": [], "user": None}
            return channel_id

    def dm_of(self, user_id: str) -> str | None:
        return next((c["id"] for c in self.conversations.values()
                     if c["kind"] == "im" and c["user"] == user_id), None)

    def add_message(self, channel: str, user_id: str, text: str) -> str:
        """A message written by a person (not the app) into a conversation; its ts."""
        with self.state_lock:
            ts = self._next_ts()
            self.conversations[channel]["messages"].append(
                {"type": "message", "user": user_id, "text": text, "ts": ts,
                 "team": self.TEAM_ID, "metadata": None})
            return ts

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Messages of a conversation, oldest first (as stored, with metadata)."""
        return list(self.conversations[channel]["messages"])

    def set_scopes(self, scopes: set[str] | frozenset[str]) -> None:
        """Give every access token exactly these scopes."""
        with self.state_lock:
            for info in self.tokens.values():
                info["scopes"] = set(scopes)

    def enable_token_rotation(self) -> dict[str, Any]:
        """Switch to rotating tokens: the settings (token, refresh_token, client id/secret)."""
        with self.state_lock:
            access, refresh = self._issue_tokens(set(ALL_SCOPES))
            return {"token": access, "refresh_token": refresh, "client_id": self.CLIENT_ID,
                    "client_secret": self.client_secret}

    def expire_tokens(self) -> None:
        """Every access token issued so far answers `token_expired` from now on."""
        with self.state_lock:
            for info in self.tokens.values():
                info["expired"] = True

    # plumbing ---------------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._serial):08X}"

    def _next_ts(self) -> str:
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def _issue_tokens(self, scopes: set[str]) -> tuple[str, str]:
        access = "xoxe.xoxb-1-" + secrets.token_hex(16)
        refresh = "xoxe-1-" + secrets.token_hex(16)
        self.tokens[access] = {"scopes": scopes, "expired": False}
        self.refresh_tokens.add(refresh)
        return access, refresh

    def _reply(self, body: dict[str, Any], status: int = 200,
               headers: dict[str, str] | None = None) -> Response:
        return self.json_response(body, status, {"X-Slack-Req-Id": secrets.token_hex(8),
                                                 **(headers or {})})

    def _ok(self, **fields: Any) -> Response:
        return self._reply({"ok": True, **fields})

    def _error(self, code: str, **fields: Any) -> Response:
        return self._reply({"ok": False, "error": code, **fields})

    def _args(self, request: Request) -> dict[str, Any] | Response:
        """Arguments from the query, a form body or a JSON body, as Slack reads them."""
        args: dict[str, Any] = dict(request.args.items())
        if request.method == "POST":
            if request.mimetype == "application/json":
                try:
                    body = json.loads(request.get_data() or b"{}")
                except ValueError:
                    return self._error("invalid_json")
                if not isinstance(body, dict):
                    return self._error("json_not_object")
                args.update(body)
            else:
                args.update(request.form.to_dict())
        return args

    @staticmethod
    def _token(request: Request, args: dict[str, Any]) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else args.get("token")
        return str(token) if token else None

    def _scopes(self, request: Request, args: dict[str, Any]) -> set[str]:
        """The scopes of the (authorized) token of this request."""
        info = self.tokens.get(self._token(request, args) or "")
        return set(info["scopes"]) if info else set()

    def _authorize(self, request: Request, args: dict[str, Any],
                   scope: str | None) -> Response | None:
        token = self._token(request, args)
        if not token:
            return self._error("not_authed")
        info = self.tokens.get(token)
        if info is None:
            return self._error("invalid_auth")
        if info["expired"]:
            return self._error("token_expired")
        if scope and scope not in info["scopes"]:
            return self._error("missing_scope", needed=scope,
                               provided=",".join(sorted(info["scopes"])))
        return None

    def _begin(self, request: Request, scope: str | None) -> dict[str, Any] | Response:
        args = self._args(request)
        if isinstance(args, Response):
            return args
        denied = self._authorize(request, args, scope)
        return denied if denied is not None else args

    def _conversation(self, ref: Any) -> dict[str, Any] | None:
        ref = str(ref or "")
        if ref in self.conversations:
            return self.conversations[ref]
        if ref in self.users:  # posting to a user id goes to the DM
            return self.conversations[self._open_im(ref)]
        name = ref.lstrip("#")
        return next((c for c in self.conversations.values() if c.get("name") == name), None)

    def _open_im(self, user_id: str) -> str:
        existing = self.dm_of(user_id)
        if existing:
            return existing
        channel_id = self._id("D")
        self.conversations[channel_id] = {
            "id": channel_id, "name": None, "kind": "im", "is_archived": False,
            "members": {self.BOT_USER_ID, user_id}, "created": int(time.time()),
            "messages": [], "user": user_id}
        return channel_id

    def _public_conversation(self, conv: dict[str, Any]) -> dict[str, Any]:
        return {"id": conv["id"], "name": conv["name"], "is_channel": conv["kind"] == "public",
                "is_group": False, "is_im": False, "is_mpim": False,
                "is_private": conv["kind"] == "private", "created": conv["created"],
                "is_archived": conv["is_archived"], "is_general": False, "unlinked": 0,
                "name_normalized": conv["name"], "is_shared": False, "is_org_shared": False,
                "is_ext_shared": False, "is_pending_ext_shared": False,
                "is_member": self.BOT_USER_ID in conv["members"], "creator": self.BOT_USER_ID,
                "num_members": len(conv["members"]),
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0}}
