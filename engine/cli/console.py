"""What the terminal can take: symbols it can encode, colour only where it is wanted, its
width, and text from events made harmless before it is printed.

A terminal never breaks a command: `prepare_streams()` makes stdout and stderr replace what
their encoding cannot hold (`\\u2714`) instead of raising, and the timeline picks ASCII symbols
for a stream that cannot encode its own. Colour needs a TTY, no `NO_COLOR` (no-color.org) and a
TERM other than `dumb`. `printable()` is the one place event-derived text (file names, vendor
error messages, comments) loses the control characters that would move the cursor, clear the
screen or reorder what a person reads (ANSI escapes, C1 controls, bidi overrides).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any, TextIO

UNICODE_SYMBOLS = {"started": "▶", "succeeded": "✔", "failed": "✘", "skipped": "↷",
                   "waiting": "⏸", "cancelled": "■", "ellipsis": "…", "branch": "⑂"}
ASCII_SYMBOLS = {"started": ">", "succeeded": "+", "failed": "x", "skipped": "-",
                 "waiting": "?", "cancelled": "#", "ellipsis": "...", "branch": "|"}

COLORS = {"succeeded": "32", "failed": "31", "skipped": "2", "waiting": "33",
          "cancelled": "35", "attempt_failed": "33"}

# C0 controls but none of the text (tab, newline are escaped too: one event, one line), DEL, C1
# controls, and the Unicode format characters that reorder or hide text (bidi embeddings,
# overrides and isolates, marks, zero-width characters, the BOM).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069"
                      "\ufeff]")
DEFAULT_COLUMNS = 120


def printable(text: Any, *, newlines: bool = False) -> str:
    """`text` with every control and bidi character written as an escape (`\\x1b`, `\\u202e`):
    what an event carries is shown, never obeyed by the terminal. `newlines=True` keeps line
    breaks (text of several lines that crownguard itself laid out)."""
    value = str(text)
    if not _CONTROL.search(value):
        return value
    if newlines:
        return "\n".join(_CONTROL.sub(_escape, line) for line in value.split("\n"))
    return _CONTROL.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def can_encode(stream: TextIO, text: str) -> bool:
    """Whether `stream` can write `text` (a stream of str with no encoding, such as a
    StringIO, takes anything)."""
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def symbols_for(stream: TextIO) -> dict[str, str]:
    """Unicode status symbols when `stream` can encode them, ASCII ones otherwise."""
    unicode = "".join(UNICODE_SYMBOLS.values())
    return dict(UNICODE_SYMBOLS if can_encode(stream, unicode) else ASCII_SYMBOLS)


def use_color(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed stream
        return False


def paint(text: str, color: str | None, enabled: bool) -> str:
    return f"\x1b[{color}m{text}\x1b[0m" if enabled and color else text


def columns() -> int:
    """The terminal's width (COLUMNS, else the terminal of stdout, else DEFAULT_COLUMNS)."""
    return max(40, shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns)


def fit(text: str, width: int, ellipsis: str = "…") -> str:
    """`text` cut to `width` characters, the cut marked by `ellipsis`."""
    if len(text) <= width:
        return text
    return text[: max(0, width - len(ellipsis))] + ellipsis


def prepare_streams(*streams: Any) -> None:
    """Let stdout and stderr (or `streams`) write what their encoding cannot hold as
    backslash escapes rather than raise in the middle of a run (PYTHONIOENCODING=ascii, a
    cp1252 console)."""
    import sys

    for stream in streams or (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            try:
                reconfigure(errors="backslashreplace")
            except (AttributeError, ValueError, OSError):
                continue


__all__ = ["ASCII_SYMBOLS", "UNICODE_SYMBOLS", "can_encode", "columns", "fit", "paint",
           "prepare_streams", "printable", "symbols_for", "use_color"]
