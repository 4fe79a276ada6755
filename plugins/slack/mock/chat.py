"""chat.* methods: posting a message (Block Kit blocks, message metadata, threads), updating
and deleting one the app posted."""

from __future__ import annotations

import json
import time
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import SlackMockBase


class ChatRoutes(SlackMockBase):
    """`chat.postMessage`, `chat.update`, `chat.delete`."""

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

    @route("POST", "/api/chat.update")
    def chat_update(self, request: Request) -> Response:
        """As Slack: the channel must be an id; `text` replaces the text and, when no `blocks`
        are given, removes the blocks; `blocks` alone keep the text; neither is `no_text`.
        Metadata stays. A text edit marks the message `edited`."""
        args = self._begin(request, "chat:write")
        if isinstance(args, Response):
            return args
        found = self._own_message(args, "cant_update_message")
        if isinstance(found, Response):
            return found
        conv, message = found
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return self._error("invalid_blocks_format")
        text = args.get("text")
        if not text and not blocks:
            return self._error("no_text")
        if text is not None and len(str(text)) > 40000:
            return self._error("msg_too_long")
        if blocks is not None and (not isinstance(blocks, list) or len(blocks) > 50 or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)):
            return self._error("invalid_blocks", response_metadata={
                "messages": ["[ERROR] blocks must be a list of at most 50 typed blocks"]})
        if text is not None:
            message["text"] = str(text)
            message["edited"] = {"user": self.BOT_USER_ID, "ts": self._next_ts()}
            if blocks is None:
                message.pop("blocks", None)
        if blocks is not None:
            if blocks:
                message["blocks"] = blocks
            else:
                message.pop("blocks", None)
        shown = {k: v for k, v in message.items() if k != "metadata"}
        return self._ok(channel=conv["id"], ts=message["ts"], text=message["text"],
                        message=shown)

    def _own_message(self, args: dict[str, Any], refusal: str
                     ) -> tuple[dict[str, Any], dict[str, Any]] | Response:
        """The conversation and the app's own message `args` name (channel id, ts), or
        Slack's error: channel_not_found, message_not_found, or `refusal` for another's."""
        conv = self.conversations.get(str(args.get("channel") or ""))
        if conv is None:
            return self._error("channel_not_found")
        message = next((m for m in conv["messages"] if m["ts"] == args.get("ts")), None)
        if message is None:
            return self._error("message_not_found")
        if message.get("bot_id") != self.BOT_ID:
            return self._error(refusal)
        return conv, message

    @route("POST", "/api/chat.delete")
    def chat_delete(self, request: Request) -> Response:
        args = self._begin(request, "chat:write")
        if isinstance(args, Response):
            return args
        found = self._own_message(args, "cant_delete_message")
        if isinstance(found, Response):
            return found
        conv, message = found
        conv["messages"].remove(message)
        return self._ok(channel=conv["id"], ts=message["ts"])
