"""The service's logs: text (the default) or JSON, one object a line, with the run bound.

    {"ts": "2026-12-02T06:01:02.345Z", "level": "error", "logger": "crownguard.service",
     "message": "...", "run_id": "3f2a9c1e...", "step_id": "suspend", "intake_item": 12}

What is bound comes from a context variable: the intake worker binds the item it processes,
the API's run operations the run they act on, and `RunBinder` (an observer of the runner's
`crownguard_step_started`) the run and step an action runs for; the runner hands its context
on to the threads that call actions, so a plugin's log lines under a run carry its run_id.
Every record passes the secrets' redaction filter before it is formatted (JSON too), and the
access log (uvicorn's) says the method, the path with token-like query values masked, the
status and the client, never a header.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

from ..hookspecs import hookimpl
from ..secrets import MASK, RedactingFilter, redact_everywhere

FORMATS = ("text", "json")
ACCESS_LOGGER = "uvicorn.access"
_NOTHING: Mapping[str, Any] = MappingProxyType({})
_bound: ContextVar[Mapping[str, Any]] = ContextVar("crownguard_log_fields", default=_NOTHING)
_TOKENISH = re.compile(r"token|secret|key|sig|auth|pass|code|session", re.IGNORECASE)


def fields() -> Mapping[str, Any]:
    """What is bound in the current context."""
    return _bound.get()


def bind(**values: Any) -> None:
    """Bind `values` for the rest of the current context (None unbinds a name)."""
    merged = {**_bound.get(), **values}
    _bound.set({k: v for k, v in merged.items() if v is not None})


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind `values` inside the block (None unbinds a name); on leaving, everything bound
    inside it is undone."""
    merged = {**_bound.get(), **values}
    token = _bound.set({k: v for k, v in merged.items() if v is not None})
    try:
        yield
    finally:
        _bound.reset(token)


class RunBinder:
    """A plugin-host observer: an action's attempt runs with its run_id and step_id bound."""

    @hookimpl
    def crownguard_step_started(self, run_id: str, step_id: str, attempt: int,
                                inputs: dict[str, Any]) -> None:
        bind(run_id=run_id, step_id=step_id)


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + \
        f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, what is bound, and the access
    log's fields; an exception as `exc` (redacted by the filter before this runs)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": _iso(record.created), "level": record.levelname.lower(),
                                 "logger": record.name, "message": record.getMessage()}
        entry.update(getattr(record, "crownguard_fields", None) or {})
        entry.update(getattr(record, "access", None) or {})
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_everywhere(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value...` (what is bound, after the message)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = getattr(record, "crownguard_fields", None) or {}
        if extra:
            text += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return text


class BindFilter(logging.Filter):
    """Copy what is bound in the logging thread's context onto the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "crownguard_fields"):
            record.crownguard_fields = dict(_bound.get())
        return True


def safe_path(path: str) -> str:
    """A request path and query for the log: token-like query values masked."""
    base, sep, query = path.partition("?")
    if not sep:
        return base
    pairs = [(k, MASK if _TOKENISH.search(k) else v)
             for k, v in parse_qsl(query, keep_blank_values=True)]
    return f"{base}?{urlencode(pairs, safe='*')}"


class AccessFilter(logging.Filter):
    """uvicorn's access records (client, method, path, version, status) rewritten: the query's
    token-like values masked; in JSON, each as a field of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            path = safe_path(str(path))
            record.args = (client, method, path, version, status)
            record.access = {"client": client, "method": method, "path": path,
                             "status": status, "http_version": version}
        return True


def configure(log_format: str, level: int = logging.INFO,
              stream: TextIO | None = None) -> logging.Handler:
    """Route every log record (the access log's too) to one handler on `stream` (stderr) in
    `log_format`, redacted; replaces the root logger's handlers."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not '{log_format}'")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(BindFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, AccessFilter) for f in access.filters):
        access.addFilter(AccessFilter())
    return handler


__all__ = ["AccessFilter", "JsonFormatter", "RunBinder", "bind", "bound", "configure",
           "fields", "safe_path"]
