"""ContentSource: how a plugin offers a file's first bytes by SHA-256.

When an event carries no bytes and its metadata leaves the "is it a model?" question open,
triage asks the content sources plugins registered (`crownguard_register_content_sources`)
for the file's first bytes: the alert source's file download (Incydr's
`GET /v1/files/get-file-by-sha256/{sha256}`), an EDR's file retrieval, an object store. The
core knows only that a source fetches through one connection of the connections file and
returns at most `limit` bytes; what is done with them belongs to the triage wing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Connection

FetchHead = Callable[["Connection", str, "str | None", int, float], bytes]


@dataclass(frozen=True)
class ContentSource:
    """A named supplier of file heads, registered through
    `crownguard_register_content_sources`.

    `connection` names the connection it fetches through (a source is used only when the
    connections file has it). `fetch_head(connection, sha256, file_name, limit, timeout)`
    returns the file's first bytes, at most `limit` of them, reading no more than that (a
    streamed download closed early, never the whole file) and giving up after `timeout`
    seconds. It raises NotFoundError for a file the source does not know, another VendorError
    (AuthError, TransportError on a timeout...) when the fetch fails; the message is what
    the verdict's evidence quotes, so it must carry no secret."""

    name: str
    connection: str
    fetch_head: FetchHead
    description: str = ""
    plugin: str = ""
