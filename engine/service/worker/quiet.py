"""One line per log record in the worker, whoever logs it.

Celery and kombu log some broker failures with their traceback (kombu's "Couldn't ack ...,
reason: network:ConnectionError" when Redis goes away between a message's delivery and its
acknowledgement). A traceback is many lines no log pipeline keeps together, and it may quote
local values; the worker's handler turns every record's exception into `: Type: message` at
the end of its one line (the message redacted by the handler's own filter after this one).
"""

from __future__ import annotations

import logging


class OneLineExceptions(logging.Filter):
    """Fold a record's exception (and stack) into its message: `...: ConnectionError: ...`,
    and a message of several lines (Celery's "Cannot connect ...\nTrying again ...") into one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text or record.stack_info:
            exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
            text = record.getMessage()
            if exc is not None:
                detail = " ".join(str(exc).split())
                text += f": {type(exc).__name__}" + (f": {detail}" if detail else "")
            record.msg, record.args = text, None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        elif "\n" in (text := record.getMessage()):
            record.msg, record.args = " ".join(text.split()), None
        return True


def fold_exceptions(handler: logging.Handler) -> None:
    """Put OneLineExceptions first on `handler` (before its redaction filter reads the text)."""
    handler.filters.insert(0, OneLineExceptions())
