"""Bounded reads: the first bytes of a file, and for a zip its central directory from the end.

Detection must cost the same for a 10 GB checkpoint as for a 10 KB one, so every read goes
through a `Window` with a byte budget: the head (64 KiB), the last 64 KiB (where a zip's
end-of-central-directory record lives), a zip64 record, and at most 1 MiB of central
directory. Nothing is ever read past the budget, and no file is ever unpickled or imported.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 64 * 1024 + 22
MAX_CENTRAL_DIRECTORY = 1024 * 1024
READ_BUDGET = HEAD_BYTES + TAIL_BYTES + MAX_CENTRAL_DIRECTORY + 4096
MAX_INFLATED = 256 * 1024

ContentSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


class Window:
    """The bytes of one file that detection may look at, with a hard read budget."""

    def __init__(self, head: bytes, size: int | None, reader: BinaryIO | None = None,
                 *, complete: bool = False):
        self.head = head
        self.size = size
        self.complete = complete
        self._reader = reader
        self.bytes_read = len(head)

    @property
    def random_access(self) -> bool:
        """Whether bytes beyond the head can be read (a seekable file of known size)."""
        return self.complete or (self._reader is not None and self.size is not None)

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`, or fewer when the budget or the file ends."""
        if offset < 0 or length <= 0:
            return b""
        if offset + length <= len(self.head) or (self.complete and self._reader is None):
            return self.head[offset:offset + length]
        if self._reader is None or self.size is None or offset >= self.size:
            return b""
        length = min(length, self.size - offset, READ_BUDGET - self.bytes_read)
        if length <= 0:
            return b""
        self._reader.seek(offset)
        data = self._reader.read(length)
        self.bytes_read += len(data)
        return data


@contextmanager
def open_window(source: ContentSource, size: int | None = None) -> Iterator[Window]:
    """A Window over a path, a binary file object or bytes.

    Bytes are the beginning of the file: pass `size` when they are only a prefix (an EDR
    sample of the first kilobytes), so that nothing past them is assumed.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if size is None or size <= len(data):
            yield _window_over(io.BytesIO(data), None)
        else:
            yield Window(data[:HEAD_BYTES], size)
        return
    if isinstance(source, (str, os.PathLike)):
        with Path(source).open("rb") as handle:
            yield _window_over(handle, size)
        return
    yield _window_over(source, size)


def _window_over(handle: BinaryIO, size: int | None) -> Window:
    seekable = False
    try:
        seekable = handle.seekable()
    except (AttributeError, OSError):
        seekable = False
    if seekable:  # a file object is judged from its start, wherever it was positioned
        handle.seek(0, io.SEEK_END)
        size = handle.tell() if size is None else size
        handle.seek(0)
    head = handle.read(HEAD_BYTES)
    complete = size is not None and len(head) >= size
    return Window(head, size, handle if seekable else None, complete=complete)


# --- compressed heads -------------------------------------------------------------------------


def inflate_head(head: bytes) -> tuple[str, bytes] | None:
    """Decompress the start of a gzip/zlib/bzip2/xz stream (at most 256 KiB out), or None."""
    if head[:2] == b"\x1f\x8b":
        kind, decompressor = "gzip", zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif len(head) > 1 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        kind, decompressor = "zlib", zlib.decompressobj()
    elif head[:3] == b"BZh" and head[3:4].isdigit():
        return _inflate_other("bzip2", bz2.BZ2Decompressor(), head)
    elif head[:6] == b"\xfd7zXZ\x00":
        return _inflate_other("xz", lzma.LZMADecompressor(), head)
    else:
        return None
    try:
        return kind, decompressor.decompress(head, MAX_INFLATED)
    except zlib.error:
        return None


def _inflate_other(kind: str, decompressor: bz2.BZ2Decompressor | lzma.LZMADecompressor,
                   head: bytes) -> tuple[str, bytes] | None:
    try:
        return kind, decompressor.decompress(head, max_length=MAX_INFLATED)
    except (OSError, EOFError, lzma.LZMAError):
        return None


# --- zip central directory --------------------------------------------------------------------

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
MAX_ENTRIES = 20_000


@dataclass(frozen=True)
class ArchiveListing:
    """Entry names (and sizes where known) of a zip or tar, as far as the budget reached."""

    kind: str
    names: tuple[str, ...]
    sizes: tuple[int | None, ...]
    complete: bool
    total_entries: int | None = None


def zip_listing(window: Window) -> ArchiveListing | None:
    """The zip's entries from its central directory, else from local headers in the head."""
    if not window.head.startswith(_LOCAL) and not window.head.startswith(b"PK\x05\x06"):
        return None
    listing = _central_directory(window) if window.random_access else None
    return listing or _local_headers(window.head)


def _central_directory(window: Window) -> ArchiveListing | None:
    size = window.size or len(window.head)
    tail_start = max(0, size - TAIL_BYTES)
    tail = window.read_at(tail_start, size - tail_start)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    record = tail[at:at + 22]
    total = int.from_bytes(record[10:12], "little")
    cd_size = int.from_bytes(record[12:16], "little")
    cd_offset = int.from_bytes(record[16:20], "little")
    if 0xFFFF in (total,) or 0xFFFFFFFF in (cd_size, cd_offset):
        zip64 = _zip64_record(window, tail, at, tail_start)
        if zip64 is None:
            return None
        total, cd_size, cd_offset = zip64
    if cd_offset + cd_size > size:
        return None
    data = window.read_at(cd_offset, min(cd_size, MAX_CENTRAL_DIRECTORY))
    names: list[str] = []
    sizes: list[int | None] = []
    pos = 0
    while pos + 46 <= len(data) and data[pos:pos + 4] == _CENTRAL and len(names) < MAX_ENTRIES:
        name_len = int.from_bytes(data[pos + 28:pos + 30], "little")
        extra_len = int.from_bytes(data[pos + 30:pos + 32], "little")
        comment_len = int.from_bytes(data[pos + 32:pos + 34], "little")
        end = pos + 46 + name_len
        if end > len(data):
            break
        names.append(data[pos + 46:end].decode("utf-8", "replace"))
        usize = int.from_bytes(data[pos + 24:pos + 28], "little")
        if usize == 0xFFFFFFFF:
            usize_or_none = _zip64_size(data[end:end + extra_len])
        else:
            usize_or_none = usize
        sizes.append(usize_or_none)
        pos = end + extra_len + comment_len
    if not names and total:
        return None
    return ArchiveListing("zip", tuple(names), tuple(sizes),
                          complete=len(names) == total, total_entries=total)


def _zip64_record(window: Window, tail: bytes, eocd_at: int,
                  tail_start: int) -> tuple[int, int, int] | None:
    locator_at = eocd_at - 20
    if locator_at < 0 or tail[locator_at:locator_at + 4] != _ZIP64_LOCATOR:
        return None
    offset = int.from_bytes(tail[locator_at + 8:locator_at + 16], "little")
    if tail_start <= offset and offset + 56 <= tail_start + len(tail):
        record = tail[offset - tail_start:offset - tail_start + 56]
    else:
        record = window.read_at(offset, 56)
    if len(record) < 56 or record[:4] != _ZIP64_EOCD:
        return None
    total = int.from_bytes(record[32:40], "little")
    cd_size = int.from_bytes(record[40:48], "little")
    cd_offset = int.from_bytes(record[48:56], "little")
    return total, cd_size, cd_offset


def _zip64_size(extra: bytes) -> int | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag = int.from_bytes(extra[pos:pos + 2], "little")
        length = int.from_bytes(extra[pos + 2:pos + 4], "little")
        if tag == 1 and length >= 8:
            return int.from_bytes(extra[pos + 4:pos + 12], "little")
        pos += 4 + length
    return None


def _local_headers(head: bytes) -> ArchiveListing | None:
    """Entry names from local file headers inside the head (when the end is out of reach)."""
    names: list[str] = []
    sizes: list[int | None] = []
    pos = head.find(_LOCAL)
    while 0 <= pos and pos + 30 <= len(head) and len(names) < MAX_ENTRIES:
        name_len = int.from_bytes(head[pos + 26:pos + 28], "little")
        raw = head[pos + 30:pos + 30 + name_len]
        if 0 < name_len < 1024 and len(raw) == name_len:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                name = ""
            if name.isprintable():
                names.append(name)
                sizes.append(int.from_bytes(head[pos + 22:pos + 26], "little") or None)
        pos = head.find(_LOCAL, pos + 4)
    if not names:
        return None
    return ArchiveListing("zip", tuple(names), tuple(sizes), complete=False)


# --- tar headers ------------------------------------------------------------------------------


def tar_listing(data: bytes) -> ArchiveListing | None:
    """Member names of a tar whose headers fall inside `data` (checksums verified)."""
    names: list[str] = []
    sizes: list[int | None] = []
    pos = 0
    long_name: str | None = None
    while pos + 512 <= len(data) and len(names) < MAX_ENTRIES:
        block = data[pos:pos + 512]
        if block == b"\0" * 512:
            break
        if not _tar_checksum_ok(block):
            break
        size = _octal(block[124:136])
        if size is None:
            break
        kind = block[156:157]
        body = data[pos + 512:pos + 512 + size]
        if kind == b"L":
            long_name = body.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind in (b"x", b"g"):
            long_name = _pax_path(body) or long_name
        else:
            name = long_name or _ustar_name(block)
            long_name = None
            names.append(name)
            sizes.append(size)
        pos += 512 + (size + 511) // 512 * 512
    if not names:
        return None
    return ArchiveListing("tar", tuple(names), tuple(sizes), complete=False)


def _tar_checksum_ok(block: bytes) -> bool:
    stored = _octal(block[148:156])
    if stored is None:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:])


def _octal(field: bytes) -> int | None:
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _ustar_name(block: bytes) -> str:
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        if prefix:
            return f"{prefix}/{name}"
    return name


def _pax_path(body: bytes) -> str | None:
    for line in body.split(b"\n"):
        _, _, record = line.partition(b" ")
        if record.startswith(b"path="):
            return record[5:].decode("utf-8", "replace")
    return None
