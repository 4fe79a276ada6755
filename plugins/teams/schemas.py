"""Input and output schemas of the teams actions."""

from __future__ import annotations

from typing import Any

from crownguard.plugins.teams.cards import STYLES

_WEB_LINK = r"^https?://[^\s]+$"

SEND_MESSAGE_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 20000},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "facts": {"type": "array", "maxItems": 20, "items": {
            "type": "object", "additionalProperties": False, "required": ["title", "value"],
            "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 100},
                           "value": {"type": "string", "maxLength": 2000}}}},
        "links": {"type": "array", "maxItems": 6, "items": {
            "type": "object", "additionalProperties": False, "required": ["title", "url"],
            "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 100},
                           "url": {"type": "string", "pattern": _WEB_LINK}}}},
        "style": {"enum": sorted(STYLES), "default": "default"},
        "allow_markup": {"type": "boolean", "default": False,
                         "description": "Keep Markdown in text and fact values; by default "
                                        "it is escaped so event data cannot add links."},
        "connection": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$",
                       "default": "teams",
                       "description": "A connection of type teams (one per channel)."},
        "dedupe": {"type": "boolean", "default": True},
    },
}
SEND_MESSAGE_OUTPUT: dict[str, Any] = {
    "type": "object",
    "required": ["changed", "status_code", "kind"],
    "properties": {"changed": {"type": "boolean"}, "status_code": {"type": "integer"},
                   "kind": {"enum": ["workflows", "connector"]}},
}
