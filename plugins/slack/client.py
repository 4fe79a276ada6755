"""Slack Web API client.

Slack answers almost every error with HTTP 200 and `{"ok": false, "error": "<code>"}`; only
rate limits come as a real 429 with Retry-After. `SlackClient.call` turns both into the
engine's error tree (AuthError, NotFoundError, RateLimited, ServerError, ConflictError) with
the method as the operation and Slack's code in the message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests

from crownguard.engine import (
    Auth,
    AuthError,
    BadResponse,
    ConfigError,
    ConflictError,
    HeaderAuth,
    NotFoundError,
    RateLimited,
    ServerError,
    VendorClient,
    VendorError,
    parse_retry_after,
)
from crownguard.plugins.slack.auth import SlackTokenRotation
from crownguard.plugins.slack.connection import DEFAULT_BASE_URL

JSON_UTF8 = "application/json; charset=utf-8"
MAX_PAGES = 20


_AUTH = {
    "not_authed": "no token was sent",
    "invalid_auth": "the token is not valid; check the connection's token",
    "account_inactive": "the token belongs to a deactivated user or app",
    "token_revoked": "the token was revoked",
    "token_expired": "the token expired and could not be refreshed",
    "no_permission": "the token may not do this in this workspace",
    "not_allowed_token_type": "this method needs another kind of token (use a bot token)",
    "ekm_access_denied": "the workspace's key management denied access",
    "team_access_not_granted": "the token has no access to this workspace",
    "missing_scope": "",  # filled from `needed`
}
_NOT_FOUND = {
    "users_not_found": "no Slack user has this e-mail address",
    "user_not_found": "no such Slack user",
    "user_not_visible": "the app may not see this Slack user",
    "channel_not_found": "no such channel, or the app cannot see it",
    "message_not_found": "no such message",
    "thread_not_found": "no such thread",
}
_RATE_LIMITED = {"ratelimited", "rate_limited"}
_SERVER = {"fatal_error", "internal_error", "service_unavailable", "request_timeout"}
_HINTS = {
    "not_in_channel": "invite the app to the channel first",
    "is_archived": "the channel is archived",
    "msg_too_long": "the message is too long",
    "no_text": "the message has no text or blocks",
    "invalid_blocks": "Slack rejected the Block Kit blocks",
    "user_disabled": "the user is deactivated",
    "cant_delete_message": "the app may only delete its own messages",
    "cant_update_message": "the app may only edit its own messages",
    "edit_window_closed": "the workspace no longer allows this message to be edited",
    "invalid_cursor": "the pagination cursor is not valid",
}


class SlackClient(VendorClient):
    """One Slack workspace, through a bot token or token rotation."""

    vendor = "slack"
    connection_type = "slack"
    request_id_headers = ("X-Slack-Req-Id",)

    @property
    def base_url(self) -> str:
        return str(self.settings.get("base_url") or DEFAULT_BASE_URL).rstrip("/") + "/"

    def make_auth(self) -> Auth:
        settings = self.settings
        if settings.get("refresh_token"):
            return SlackTokenRotation(refresh_token=settings["refresh_token"],
                                      client_id=str(settings.get("client_id", "")),
                                      client_secret=settings.get("client_secret", ""),
                                      token=settings.get("token"))
        if settings.get("token"):
            return HeaderAuth(settings["token"])
        raise ConfigError(f"connection '{self.connection.name}' has no Slack token: set token "
                          "(a bot token) or refresh_token with client_id and client_secret")

    def error_message(self, body: Any, response: requests.Response) -> str:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return self._describe(body)
        return super().error_message(body, response)

    # calls ------------------------------------------------------------------------------------

    def call(self, method: str, *, params: Mapping[str, Any] | None = None,
             body: Mapping[str, Any] | None = None, http_method: str = "POST") -> dict[str, Any]:
        """Call a Web API method; the answer when `ok`, the classified error otherwise.

        Read methods go as GET with query parameters, writes as POST with a UTF-8 JSON body.
        An expired rotating token is refreshed once and the call re-sent."""
        refreshed = False
        while True:
            headers = {"Content-Type": JSON_UTF8} if body is not None else None
            response = self.request(http_method, method, operation=method, params=params,
                                    json_body=dict(body) if body is not None else None,
                                    headers=headers)
            data = self.parse_json(response, method)
            if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
                raise BadResponse("the answer has no 'ok' field", vendor=self.vendor,
                                  operation=method, status=response.status_code,
                                  request_id=response.headers.get("X-Slack-Req-Id"))
            if data["ok"]:
                return data
            if data.get("error") == "token_expired" and not refreshed and self.auth.invalidate():
                refreshed = True
                continue
            raise self.slack_error(data, response, method)

    def pages(self, method: str, params: Mapping[str, Any], key: str,
              max_pages: int = MAX_PAGES) -> Iterator[dict[str, Any]]:
        """Items of a cursor-paginated read method, page by page, following next_cursor."""
        cursor = ""
        for _ in range(max_pages):
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self.call(method, params=query, http_method="GET")
            items = page.get(key)
            if not isinstance(items, list):
                raise BadResponse(f"the answer has no '{key}' list", vendor=self.vendor,
                                  operation=method, status=200)
            yield from (item for item in items if isinstance(item, dict))
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                return

    def slack_error(self, data: Mapping[str, Any], response: requests.Response,
                    operation: str) -> VendorError:
        """The engine error for an `ok: false` answer."""
        code = str(data.get("error") or "unknown_error")
        cls: type[VendorError]
        if code in _AUTH:
            cls = AuthError
        elif code in _NOT_FOUND:
            cls = NotFoundError
        elif code in _RATE_LIMITED:
            cls = RateLimited
        elif code in _SERVER:
            cls = ServerError
        else:
            cls = ConflictError
        message = self.redactor.redact(self._describe(data))
        return cls(message, vendor=self.vendor, operation=operation,
                   status=response.status_code,
                   request_id=response.headers.get("X-Slack-Req-Id"),
                   retry_after=parse_retry_after(response.headers.get("Retry-After")),
                   body=self.redactor.redact_value(dict(data)))

    @staticmethod
    def _describe(data: Mapping[str, Any]) -> str:
        code = str(data.get("error") or "unknown_error")
        if code == "missing_scope":
            needed = data.get("needed") or "?"
            return f"missing_scope: the token lacks the scope '{needed}' this method needs"
        detail = _AUTH.get(code) or _NOT_FOUND.get(code) or _HINTS.get(code) or ""
        messages = (data.get("response_metadata") or {}).get("messages")
        if not detail and isinstance(messages, list) and messages:
            detail = "; ".join(str(m) for m in messages[:3])
        return f"{code}: {detail}" if detail else code

    # the methods the actions use ---------------------------------------------------------------

    def lookup_user_by_email(self, email: str) -> dict[str, Any]:
        """users.lookupByEmail (scope users:read.email)."""
        user = self.call("users.lookupByEmail", params={"email": email},
                         http_method="GET").get("user")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise BadResponse("the answer has no user id", vendor=self.vendor,
                              operation="users.lookupByEmail", status=200)
        return user

    def user_info(self, user_id: str) -> dict[str, Any]:
        """users.info (scope users:read): the user object. Its `profile.email` is there only
        when the token also has users:read.email (and the user has an e-mail: bots do not)."""
        user = self.call("users.info", params={"user": user_id}, http_method="GET").get("user")
        if not isinstance(user, dict) or user.get("id") != user_id:
            raise BadResponse("the answer has no user with the id asked for", vendor=self.vendor,
                              operation="users.info", status=200)
        return user

    def open_dm(self, user_id: str) -> str:
        """conversations.open with one user (scope im:write): the DM channel id."""
        channel = self.call("conversations.open", body={"users": user_id}).get("channel")
        if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
            raise BadResponse("the answer has no channel id", vendor=self.vendor,
                              operation="conversations.open", status=200)
        return str(channel["id"])

    def post_message(self, channel: str, *, text: str, blocks: list[dict[str, Any]] | None = None,
                     metadata: dict[str, Any] | None = None,
                     thread_ts: str | None = None) -> dict[str, Any]:
        """chat.postMessage (scope chat:write): `{channel, ts, message}`."""
        body: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False,
                                "unfurl_media": False}
        if blocks:
            body["blocks"] = blocks
        if metadata:
            body["metadata"] = metadata
        if thread_ts:
            body["thread_ts"] = thread_ts
        answer = self.call("chat.postMessage", body=body)
        if not isinstance(answer.get("ts"), str) or not isinstance(answer.get("channel"), str):
            raise BadResponse("the answer has no channel and ts", vendor=self.vendor,
                              operation="chat.postMessage", status=200)
        return answer

    def delete_message(self, channel: str, ts: str) -> bool:
        """chat.delete; False when the message is already gone."""
        try:
            self.call("chat.delete", body={"channel": channel, "ts": ts})
        except NotFoundError as exc:
            if "message_not_found" in str(exc):
                return False
            raise
        return True

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message at `ts` in a channel (conversations.history with latest=ts,
        inclusive, limit 1; scope *:history), or None when it is gone."""
        params = {"channel": channel, "latest": ts, "inclusive": "true", "limit": 1}
        answer = self.call("conversations.history", params=params, http_method="GET")
        found = [m for m in answer.get("messages") or []
                 if isinstance(m, dict) and m.get("ts") == ts]
        return found[0] if found else None

    def update_message(self, channel: str, ts: str, *, text: str,
                       blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """chat.update (scope chat:write). Without `blocks` Slack drops the message's blocks
        when `text` is given, so pass them to keep them."""
        body: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks:
            body["blocks"] = blocks
        return self.call("chat.update", body=body)

    def find_own_message(self, channel: str, event_type: str, key: str,
                         oldest: float) -> dict[str, Any] | None:
        """The message carrying our metadata `{event_type, event_payload.dedupe_key: key}`
        posted since `oldest`, from conversations.history (scope *:history)."""
        params = {"channel": channel, "oldest": f"{oldest:.6f}", "limit": 200,
                  "include_all_metadata": "true"}
        for message in self.pages("conversations.history", params, "messages"):
            metadata = message.get("metadata")
            if isinstance(metadata, dict) and metadata.get("event_type") == event_type \
                    and (metadata.get("event_payload") or {}).get("dedupe_key") == key:
                return message
        return None

    def channel_id(self, name: str) -> str:
        """The id of a channel given as `#name` or `name`, from conversations.list."""
        wanted = name.lstrip("#")
        params = {"types": "public_channel,private_channel", "exclude_archived": "true",
                  "limit": 200}
        for channel in self.pages("conversations.list", params, "channels"):
            if channel.get("name") == wanted and isinstance(channel.get("id"), str):
                return str(channel["id"])
        raise NotFoundError(f"no channel named #{wanted} that the app can see",
                            vendor=self.vendor, operation="conversations.list")

