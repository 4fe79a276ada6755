r"""Event data interpolated into markup shows as text, whatever it holds.

A playbook writes Markdown (a Jira description), Slack mrkdwn or a Teams card around values
from the event: `file: \`${{ event.file.path }}\``. A file path holding a backtick and
`](https://evil.example)` must not close the code span and plant a link. An action names the
inputs whose text is markup (`@action(..., markup=("description",))`); when a step renders
them, every interpolated value is *quoted*: its ASCII punctuation and line breaks are replaced
by private-use stand-ins (U+E000 plus the character's code), which no markup parser gives a
meaning. The plugin that owns the format turns the stand-ins back into the characters, escaped
for its format, at the point where the text enters it (`unquote(text, escape)`): after parsing
Markdown into document nodes (Jira's ADF), or as `&lt;` in mrkdwn (Slack). The author's own
markup, the literal text of the template, is never quoted.

Any text may hold stand-ins (quoted or typed in): unquoting only ever makes them literal, so
they cannot be used to forge markup either.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

_BASE = 0xE000
QUOTED = frozenset(string.punctuation + "\n\r\t")
_QUOTE = {ord(c): chr(_BASE + ord(c)) for c in QUOTED}
_STAND_IN = re.compile("[" + "".join(re.escape(chr(_BASE + ord(c))) for c in sorted(QUOTED))
                       + "]")


def quote(text: str) -> str:
    """A value about to be interpolated into markup, with its special characters stood in."""
    return text.translate(_QUOTE)


def quote_value(value: Any) -> Any:
    """Every string inside a (nested) value quoted."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, dict):
        return {k: quote_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [quote_value(v) for v in value]
    return value


def _literal(char: str) -> str:
    return char


def unquote(text: str, escape: Callable[[str], str] = _literal) -> str:
    """The text with each stand-in back as its character, passed through `escape` (the
    format's own escaping of that one character; by default none: for text already parsed)."""
    if not text or not _STAND_IN.search(text):
        return text
    return _STAND_IN.sub(lambda m: escape(chr(ord(m.group(0)) - _BASE)), text)


def unquote_value(value: Any, escape: Callable[[str], str] = _literal) -> Any:
    """`unquote` over every string inside a (nested) value."""
    if isinstance(value, str):
        return unquote(value, escape)
    if isinstance(value, dict):
        return {k: unquote_value(v, escape) for k, v in value.items()}
    if isinstance(value, list):
        return [unquote_value(v, escape) for v in value]
    return value
