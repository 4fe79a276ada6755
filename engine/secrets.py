"""Secret values and their redaction.

A `Secret` never shows its value in repr/str/format; code that must send it calls `reveal()`.
A `Redactor` knows every secret of a configuration and scrubs them, with their base64 and
URL-encoded forms, from any text before it reaches a log, an error or a run record. What was
cut short elsewhere still loses the piece of a secret at its edge: a fragment of FRAGMENT or
more characters that ends a text (a secret's start) or begins it (a secret's end) is masked
too. `cut()` redacts before it cuts. `RedactingFilter` passes every log record through every
live redactor (urllib3's request lines carry URLs, and URLs carry tokens).
"""

from __future__ import annotations

import base64
import logging
import threading
import weakref
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
FRAGMENT = 8  # the shortest piece of a secret that is masked where a cut left it
_ELLIPSES = ("...", "…")


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = ""):
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source or MASK})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def reveal(value: Any) -> Any:
    """The plain value of a Secret, or the value itself."""
    return value.reveal() if isinstance(value, Secret) else value


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    forms.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    # Inside a longer base64 value (HTTP Basic "id:secret", a JSON blob) the secret starts at
    # one of three byte alignments; the whole 3-byte groups of each alignment are a stable part
    # of any such encoding.
    for skip in range(3):
        chunk = raw[skip:]
        chunk = chunk[: len(chunk) - len(chunk) % 3]
        if len(chunk) >= 6:
            forms.add(base64.b64encode(chunk).decode())
            forms.add(base64.urlsafe_b64encode(chunk).decode())
    return {f for f in forms if len(f) >= 4}


class Redactor:
    """Scrubs known secrets (and their encodings) out of text and nested values."""

    def __init__(self, secrets: list[str] | None = None):
        self._lock = threading.Lock()
        self._forms: list[str] = []
        for s in secrets or []:
            self.add(s)
        _LIVE.add(self)

    def add(self, secret: str | Secret) -> None:
        value = reveal(secret)
        if not value or len(value) < 4:
            return
        with self._lock:
            merged = set(self._forms) | _forms(value)
            self._forms = sorted(merged, key=len, reverse=True)

    def knows_secrets(self) -> bool:
        """Whether a secret was added (they are never taken away)."""
        return bool(self._forms)

    def redact(self, text: str) -> str:
        forms = self._forms
        for form in forms:
            if form in text:
                text = text.replace(form, MASK)
        return _mask_edges(text, forms) if forms else text

    def cut(self, text: str, limit: int) -> str:
        """`text` redacted, then cut to at most `limit` characters (never the other way round:
        a cut secret no longer matches)."""
        text = self.redact(text)
        return text if len(text) <= limit else self.redact(text[:limit])

    def redact_value(self, value: Any) -> Any:
        if not self._forms:  # no secret known: only Secret objects to mask, in a copy
            if type(value) is dict:  # the common case, a step's inputs or output: flat
                for v in value.values():
                    if type(v) not in _PLAIN:
                        return _unwrapped(value)
                return value.copy()  # nothing to mask or convert, but still a copy
            return _unwrapped(value)
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Secret):
            return MASK
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _unwrapped(value: Any) -> Any:
    """`redact_value` with no secret forms: the same copy, Secrets masked, no text scanned."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k: v if type(v) in _PLAIN else _unwrapped(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN else _unwrapped(v) for v in value]
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, dict):
        return {k: _unwrapped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unwrapped(v) for v in value]
    return value


def _mask_edges(text: str, forms: list[str]) -> str:
    """Mask the start of a secret that ends `text` (before a trailing ellipsis) and the end of
    one that begins it: what a cut made elsewhere leaves of a secret."""
    if len(text) < FRAGMENT:
        return text
    body, ellipsis = text, ""
    for mark in _ELLIPSES:
        if body.endswith(mark):
            body, ellipsis = body[: -len(mark)], mark
            break
    for form in forms:
        if len(form) <= FRAGMENT:
            continue
        tail = body[-FRAGMENT:]
        if tail in form:
            for size in range(min(len(form) - 1, len(body)), FRAGMENT - 1, -1):
                if body.endswith(form[:size]):
                    body = body[:-size] + MASK
                    break
        head = body[:FRAGMENT]
        if head in form:
            for size in range(min(len(form) - 1, len(body)), FRAGMENT - 1, -1):
                if body.startswith(form[-size:]):
                    body = MASK + body[size:]
                    break
    return body + ellipsis


_LIVE: weakref.WeakSet[Redactor] = weakref.WeakSet()


def redact_everywhere(text: str) -> str:
    """`text` through every redactor that is alive (every configuration loaded)."""
    for redactor in list(_LIVE):
        text = redactor.redact(text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that passes every record's message (and traceback) through every live
    redactor. `install_log_redaction()` puts it on the root logger's handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        redacted = redact_everywhere(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_everywhere(logging.Formatter().formatException(
                record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_everywhere(record.exc_text)
        return True


def redact_logger(name: str) -> None:
    """Redact every record logged on logger `name` itself, whatever handlers emit it (for a
    library's loggers that print what crownguard sends: urllib3's request lines)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Redact every record that `logger`'s handlers (default: the root logger's) emit."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
