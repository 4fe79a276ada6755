"""A stateful mock of the Slack Web API methods the plugin calls.

Real paths (`/api/<method>`), bearer-token auth with scopes, HTTP 200 with `ok: false` and
Slack's error codes (`users_not_found`, `invalid_auth`, `missing_scope` with `needed`,
`not_in_channel`, `token_expired`...), HTTP 404 `unknown_method`, HTTP 429 `ratelimited` with
Retry-After (injected), cursor pagination with `response_metadata.next_cursor`, message metadata,
and token rotation through `oauth.v2.access`. `click()` and `submit_view()` build signed
interactivity requests exactly as Slack sends them to an app.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import MockServer, route
from crownguard.plugins.slack.mock_payloads import (
    block_actions_payload,
    signed_request,
    view_submission_payload,
)

ALL_SCOPES = frozenset({"chat:write", "im:write", "users:read", "users:read.email",
                        "channels:read", "groups:read", "im:read", "channels:history",
                        "groups:history", "im:history"})
HISTORY_SCOPE = {"public": "channels:history", "private": "groups:history", "im": "im:history"}
_ERROR_FOR_STATUS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


class SlackMock(MockServer):
    """Slack workspace T0CROWN01: a bot user with every scope, a #soc-alerts channel the app is
    in, and the users, channels, DMs and messages tests add."""

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

    def click(self, channel: str, ts: str, choice: str, user_id: str, *,
              justification: str | None = None,
              timestamp: int | None = None) -> tuple[str, dict[str, str]]:
        """The signed block_actions request Slack sends when `user_id` presses a nudge button
        (`choice`: mistake or business_reason) after typing `justification`."""
        with self.state_lock:
            message = next((m for m in self.conversations[channel]["messages"]
                            if m["ts"] == ts), None)
            if message is None:
                raise LookupError(f"no message {ts} in {channel}")
            payload = block_actions_payload(self, self.users[user_id], channel, message,
                                            choice, justification)
        return signed_request(payload, self.signing_secret, timestamp)

    def submit_view(self, private_metadata: str, user_id: str, *,
                    justification: str | None = None, choice: str | None = None,
                    timestamp: int | None = None) -> tuple[str, dict[str, str]]:
        """The signed view_submission request for a modal carrying `private_metadata`."""
        payload = view_submission_payload(self, self.users[user_id], private_metadata,
                                          justification, choice)
        return signed_request(payload, self.signing_secret, timestamp)

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

    def _authorize(self, request: Request, args: dict[str, Any],
                   scope: str | None) -> Response | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else args.get("token")
        if not token:
            return self._error("not_authed")
        info = self.tokens.get(str(token))
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

    # methods ----------------------------------------------------------------------------------

    @route("GET", "/api/users.lookupByEmail")
    @route("POST", "/api/users.lookupByEmail")
    def users_lookup_by_email(self, request: Request) -> Response:
        args = self._begin(request, "users:read.email")
        if isinstance(args, Response):
            return args
        email = str(args.get("email") or "").strip().lower()
        if not email:
            return self._error("invalid_arguments", response_metadata={
                "messages": ["[ERROR] missing required field: email"]})
        user = next((u for u in self.users.values()
                     if u["profile"]["email"].lower() == email), None)
        if user is None:
            return self._error("users_not_found")
        public = {k: v for k, v in user.items() if k != "locale" or v}
        return self._ok(user=public)

    @route("POST", "/api/conversations.open")
    def conversations_open(self, request: Request) -> Response:
        args = self._begin(request, "im:write")
        if isinstance(args, Response):
            return args
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if args.get("channel"):
            conv = self.conversations.get(str(args["channel"]))
            if conv is None:
                return self._error("channel_not_found")
            return self._ok(no_op=True, already_open=True, channel={"id": conv["id"]})
        if not users:
            return self._error("users_list_not_supplied")
        if len(users) > 1:
            return self._error("method_not_supported_for_channel_type")  # no MPIMs here
        user = self.users.get(users[0])
        if user is None:
            return self._error("user_not_found")
        if user["deleted"]:
            return self._error("user_disabled")
        already = self.dm_of(users[0]) is not None
        channel_id = self._open_im(users[0])
        fields: dict[str, Any] = {"channel": {"id": channel_id}}
        if already:
            fields.update(no_op=True, already_open=True)
        return self._ok(**fields)

    @route("POST", "/api/chat.postMessage")
    def chat_post_message(self, request: Request) -> Response:
        args = self._begin(request, "chat:write")
        if isinstance(args, Response):
            return args
        conv = self._conversation(args.get("channel"))
        if conv is None:
            return self._error("channel_not_found")
        if conv["is_archived"]:
            return self._error("is_archived")
        if self.BOT_USER_ID not in conv["members"]:
            return self._error("not_in_channel")
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return self._error("invalid_blocks_format")
        text = str(args.get("text") or "")
        if not text and not blocks:
            return self._error("no_text")
        if len(text) > 40000:
            return self._error("msg_too_long")
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > 50 or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)):
            return self._error("invalid_blocks", response_metadata={
                "messages": ["[ERROR] blocks must be a list of at most 50 typed blocks"]})
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = "invalid"
        if metadata is not None and not (isinstance(metadata, dict)
                                         and isinstance(metadata.get("event_type"), str)
                                         and isinstance(metadata.get("event_payload"), dict)):
            return self._error("invalid_metadata_format")
        message: dict[str, Any] = {
            "type": "message", "user": self.BOT_USER_ID, "bot_id": self.BOT_ID,
            "app_id": self.APP_ID, "text": text, "ts": self._next_ts(), "team": self.TEAM_ID,
            "bot_profile": {"id": self.BOT_ID, "app_id": self.APP_ID, "name": "crownguard",
                            "deleted": False, "team_id": self.TEAM_ID,
                            "updated": int(time.time()), "icons": {
                                "image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
                                "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
                                "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png"}},
        }
        if blocks:
            message["blocks"] = blocks
        if args.get("thread_ts"):
            message["thread_ts"] = str(args["thread_ts"])
        conv["messages"].append({**message, "metadata": metadata})
        return self._ok(channel=conv["id"], ts=message["ts"], message=message)

    @route("POST", "/api/chat.delete")
    def chat_delete(self, request: Request) -> Response:
        args = self._begin(request, "chat:write")
        if isinstance(args, Response):
            return args
        conv = self.conversations.get(str(args.get("channel") or ""))
        if conv is None:
            return self._error("channel_not_found")
        message = next((m for m in conv["messages"] if m["ts"] == args.get("ts")), None)
        if message is None:
            return self._error("message_not_found")
        if message.get("bot_id") != self.BOT_ID:
            return self._error("cant_delete_message")
        conv["messages"].remove(message)
        return self._ok(channel=conv["id"], ts=message["ts"])

    @route("GET", "/api/conversations.history")
    @route("POST", "/api/conversations.history")
    def conversations_history(self, request: Request) -> Response:
        args = self._begin(request, None)
        if isinstance(args, Response):
            return args
        conv = self.conversations.get(str(args.get("channel") or ""))
        if conv is None:
            return self._error("channel_not_found")
        denied = self._authorize(request, args, HISTORY_SCOPE[conv["kind"]])
        if denied is not None:
            return denied
        if self.BOT_USER_ID not in conv["members"]:
            return self._error("not_in_channel")
        inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
        try:
            oldest = float(args.get("oldest") or 0)
            latest = float(args.get("latest") or 1e12)
        except ValueError:
            return self._error("invalid_ts_oldest")
        newest_first = sorted(conv["messages"], key=lambda m: float(m["ts"]), reverse=True)
        window = [m for m in newest_first if (oldest <= float(m["ts"]) <= latest if inclusive
                                              else oldest < float(m["ts"]) < latest)]
        start = 0
        if args.get("cursor"):
            marker = _decode_cursor(str(args["cursor"]), "next_ts:")
            if marker is None:
                return self._error("invalid_cursor")
            start = next((i for i, m in enumerate(window) if m["ts"] <= marker), len(window))
        limit = _limit(args.get("limit"), 100, 999)
        page = window[start:start + limit]
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = [{k: v for k, v in m.items()
                     if k != "metadata" or (with_metadata and v is not None)} for m in page]
        has_more = start + limit < len(window)
        fields: dict[str, Any] = {"messages": messages, "has_more": has_more, "pin_count": 0,
                                  "channel_actions_ts": None, "channel_actions_count": 0}
        if has_more:
            fields["response_metadata"] = {
                "next_cursor": _encode_cursor("next_ts:" + window[start + limit]["ts"])}
        return self._ok(**fields)

    @route("GET", "/api/conversations.list")
    @route("POST", "/api/conversations.list")
    def conversations_list(self, request: Request) -> Response:
        args = self._begin(request, None)
        if isinstance(args, Response):
            return args
        types = {t.strip() for t in str(args.get("types") or "public_channel").split(",")}
        kinds = {"public_channel": ("public", "channels:read"),
                 "private_channel": ("private", "groups:read"), "im": ("im", "im:read")}
        wanted = set()
        for name in types:
            if name not in kinds:
                return self._error("invalid_types")
            denied = self._authorize(request, args, kinds[name][1])
            if denied is not None:
                return denied
            wanted.add(kinds[name][0])
        exclude_archived = str(args.get("exclude_archived", "")).lower() in ("1", "true")
        found = sorted((c for c in self.conversations.values() if c["kind"] in wanted
                        and not (exclude_archived and c["is_archived"])
                        and (c["kind"] == "public" or self.BOT_USER_ID in c["members"])),
                       key=lambda c: c["id"])
        start = 0
        if args.get("cursor"):
            marker = _decode_cursor(str(args["cursor"]), "team:")
            if marker is None:
                return self._error("invalid_cursor")
            start = next((i for i, c in enumerate(found) if c["id"] >= marker), len(found))
        limit = _limit(args.get("limit"), 100, 1000)
        page = found[start:start + limit]
        next_cursor = (_encode_cursor("team:" + found[start + limit]["id"])
                       if start + limit < len(found) else "")
        return self._ok(channels=[self._public_conversation(c) for c in page],
                        response_metadata={"next_cursor": next_cursor})

    @route("POST", "/api/oauth.v2.access")
    def oauth_v2_access(self, request: Request) -> Response:
        form = request.form.to_dict()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = request.authorization.username
            client_secret = request.authorization.password
        if client_id != self.CLIENT_ID:
            return self._error("invalid_client_id")
        if client_secret != self.client_secret:
            return self._error("bad_client_secret")
        if form.get("grant_type") != "refresh_token":
            return self._error("invalid_grant_type")
        refresh = form.get("refresh_token", "")
        if refresh not in self.refresh_tokens:
            return self._error("invalid_refresh_token")
        self.refresh_tokens.discard(refresh)  # single use, as Slack does
        access, new_refresh = self._issue_tokens(set(ALL_SCOPES))
        return self._reply({
            "ok": True, "app_id": self.APP_ID, "authed_user": {"id": "U0ADMIN001"},
            "scope": ",".join(sorted(ALL_SCOPES)), "token_type": "bot",
            "access_token": access, "bot_user_id": self.BOT_USER_ID,
            "refresh_token": new_refresh, "expires_in": 43200,
            "team": {"id": self.TEAM_ID, "name": "Crownguard demo"}, "enterprise": None,
            "is_enterprise_install": False})


def _encode_cursor(text: str) -> str:
    """Slack cursors are opaque base64 text, e.g. base64("team:C061FA5PB")."""
    return base64.b64encode(text.encode()).decode()


def _decode_cursor(cursor: str, prefix: str) -> str | None:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return text[len(prefix):] if text.startswith(prefix) else None


def _limit(value: Any, default: int, maximum: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        number = default
    return max(1, min(number, maximum))
