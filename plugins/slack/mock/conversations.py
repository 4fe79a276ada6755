"""conversations.* methods: opening a DM, reading history and listing channels, with Slack's
cursor pagination (`response_metadata.next_cursor`)."""

from __future__ import annotations

import base64
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import HISTORY_SCOPE, SlackMockBase


class ConversationRoutes(SlackMockBase):
    """`conversations.open`, `conversations.history`, `conversations.list`."""

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
