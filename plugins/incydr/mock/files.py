"""File downloads: `GET /v1/files/get-file-by-sha256/{sha256}`, the file's bytes, streamed.

As Incydr answers: a bearer token with the `files:read` permission, `400` for a value that is
not a SHA-256, `404` for a hash the tenant holds no file for, and the body as
`application/octet-stream`. The body is a generator, so a client that stops reading stops the
download; `bytes_sent` counts what was actually handed to the socket, so a test can prove a
fetch read the head of a large file and not the rest.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from werkzeug import Request, Response

from crownguard.engine import route

from .base import IncydrMockBase

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True)
class StoredFile:
    """A file the tenant holds: its first bytes, then zeros up to `size` (a large file costs
    the mock no memory)."""

    head: bytes
    size: int
    seconds_per_chunk: float = 0.0  # a slow download: the body trickles in

    def chunks(self) -> Iterator[bytes]:
        sent = 0
        while sent < self.size:
            if self.seconds_per_chunk and sent:
                time.sleep(self.seconds_per_chunk)
            end = min(sent + CHUNK_BYTES, self.size)
            if sent < len(self.head):
                chunk = self.head[sent:min(end, len(self.head))]
            else:
                chunk = bytes(end - sent)
            sent += len(chunk)
            yield chunk

    def digest(self) -> str:
        sha = hashlib.sha256()
        for chunk in self.chunks():
            sha.update(chunk)
        return sha.hexdigest()


class FileRoutes(IncydrMockBase):
    """The files the tenant's agents collected, by SHA-256."""

    def reset_state(self) -> None:
        super().reset_state()
        self.files: dict[str, StoredFile] = {}
        self.sent_lock = threading.Lock()
        self.bytes_sent = 0  # body bytes of file downloads handed to the socket, all calls

    @route("GET", "/v1/files/get-file-by-sha256/{sha256}")
    def get_file_by_sha256(self, request: Request, sha256: str) -> Any:
        caller = self.caller(request, "files:read")
        if isinstance(caller, Response):
            return caller
        if not SHA256.match(sha256):
            return self.error(400, f"invalid SHA-256 '{sha256[:80]}'")
        stored = self.files.get(sha256.lower())
        if stored is None:
            return self.error(404, f"no file with SHA-256 {sha256.lower()}")
        return Response(self._count(stored.chunks()), status=200, direct_passthrough=True,
                        content_type="application/octet-stream",
                        headers={"Content-Length": str(stored.size)})

    def _count(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            with self.sent_lock:
                self.bytes_sent += len(chunk)
            yield chunk

    # helpers for tests and the demo ---------------------------------------------------------

    def add_file(self, content: bytes, *, size: int | None = None, sha256: str | None = None,
                 seconds_per_chunk: float = 0.0) -> str:
        """Hold a file: `content`, then zeros up to `size` when that is larger, sent in 16 KiB
        chunks (`seconds_per_chunk` apart: a download that trickles). Returns its SHA-256
        (computed unless given: give it for a large padded file, as events do)."""
        stored = StoredFile(bytes(content), max(len(content), size or 0), seconds_per_chunk)
        digest = (sha256 or stored.digest()).lower()
        if not SHA256.match(digest):
            raise ValueError(f"not a SHA-256: {sha256!r}")
        with self.state_lock:
            self.files[digest] = stored
        return digest

    def seed_files(self, items: list[dict[str, Any]]) -> None:
        """Scenario seeding: `{content_base64 | content_hex, size?, sha256?}` per file."""
        for item in items:
            if "content_base64" in item:
                content = base64.b64decode(item["content_base64"])
            else:
                content = bytes.fromhex(str(item.get("content_hex", "")))
            self.add_file(content, size=item.get("size"), sha256=item.get("sha256"))
