"""The Adaptive Card a Teams message carries, in the envelope both webhook kinds accept.

    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
      "contentUrl": null, "content": {"type": "AdaptiveCard", "version": "1.4", ...}}]}

A webhook card cannot collect input (Action.Submit needs a bot), so answers are links out
(Action.OpenUrl). Text from events is escaped for Teams' Markdown unless the author asks for
markup, so a file name cannot become a link.
"""

from __future__ import annotations

import json
import re
from typing import Any

from crownguard.engine import InputError, unquote

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"
MAX_MESSAGE_BYTES = 28 * 1024  # Teams' documented message size limit
STYLES = {"default": "Default", "attention": "Attention", "warning": "Warning",
          "good": "Good", "accent": "Accent"}
_MARKDOWN = re.compile(r"([\\`*_\[\]()~#>!|])")


def escape_markdown(text: str) -> str:
    """Backslash-escape the Markdown Teams renders in a TextBlock."""
    return _MARKDOWN.sub(r"\\\1", text)


def message_card(*, text: str, title: str | None = None,
                 facts: list[dict[str, str]] | None = None,
                 links: list[dict[str, str]] | None = None, style: str = "default",
                 allow_markup: bool = False) -> dict[str, Any]:
    """The webhook payload for one card."""
    # Values a step interpolated are quoted (crownguard.engine.unquote): literal text here,
    # in the author's markup or not.
    def clean(value: str) -> str:
        return (unquote(value, escape_markdown) if allow_markup
                else escape_markdown(unquote(value)))

    color = STYLES.get(style, "Default")
    body: list[dict[str, Any]] = []
    if title:
        body.append({"type": "TextBlock", "text": clean(title), "size": "Medium",
                     "weight": "Bolder", "wrap": True, "style": "heading", "color": color})
    body.append({"type": "TextBlock", "text": clean(text), "wrap": True})
    if facts:
        body.append({"type": "FactSet", "facts": [
            {"title": clean(f["title"]), "value": clean(f["value"])} for f in facts]})
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard", "version": CARD_VERSION, "body": body,
        "msteams": {"width": "Full"},
    }
    if links:
        content["actions"] = [{"type": "Action.OpenUrl", "title": link["title"],
                               "url": link["url"]} for link in links]
    payload = {"type": "message", "attachments": [
        {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": content}]}
    size = len(json.dumps(payload).encode())
    if size > MAX_MESSAGE_BYTES:
        raise InputError(f"the Teams message is {size} bytes; Teams accepts about "
                         f"{MAX_MESSAGE_BYTES}: shorten the text or the facts")
    return payload
