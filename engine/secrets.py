"""Secret values and their redaction.

A `Secret` never shows its value in repr/str/format; code that must send it calls `reveal()`.
A `Redactor` knows every secret of a configuration and scrubs them, with their base64 and
URL-encoded forms, from any text before it reaches a log, an error or a run record.
"""

from __future__ import annotations

import base64
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"


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

    def add(self, secret: str | Secret) -> None:
        value = reveal(secret)
        if not value or len(value) < 4:
            return
        with self._lock:
            merged = set(self._forms) | _forms(value)
            self._forms = sorted(merged, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def redact_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Secret):
            return MASK
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value
