"""The Incydr content source: a file's first bytes by SHA-256, for triage's content checks.

Registered with the engine through `crownguard_register_content_sources`; it fetches through
the `incydr` connection with the plugin's client (`IncydrClient.file_head`: streamed, closed
once the bytes asked for are in), under one deadline for the token, the headers and the body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn

from crownguard.engine import Connection, ContentSource, TransportError

from .client import IncydrClient

OPERATION = "get file by sha256"


class FetchDeadline:
    """What the client asks of a step, for one fetch outside any step: the time left."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.until = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def check_deadline(self) -> None:
        if self.remaining() <= 0:
            raise TransportError(f"timed out after {self.seconds:g}s", vendor="incydr",
                                 operation=OPERATION)

    def poll(self, probe: Callable[[], Any], **kwargs: Any) -> NoReturn:
        raise TransportError("a file fetch does not wait for asynchronous work",
                             vendor="incydr", operation=OPERATION)


def fetch_head(connection: Connection, sha256: str, file_name: str | None, limit: int,
               timeout: float) -> bytes:
    """At most `limit` bytes from the start of the file (Incydr takes no file name)."""
    return IncydrClient(connection, FetchDeadline(timeout)).file_head(sha256, limit)


CONTENT_SOURCE = ContentSource("incydr", "incydr", fetch_head,
                               description="files Incydr collected, by SHA-256")
