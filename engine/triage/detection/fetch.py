"""Content checks from the source: when metadata leaves the model question open, fetch the
file's first bytes by SHA-256 from a content source (Incydr's file download...) and decide by
content.

    fetch = ContentFetch(connected_sources(host, config), ContentCache(path))
    fetch.prefetch(events, index)        # the open questions of a batch, `concurrency` at a time
    fetch.detect(event, index)           # -> Detection (by content, or by metadata saying why)

Only the head is fetched (HEAD_BYTES, what content detection reads of a prefix): the source
streams and closes the download there, never the whole file. Verdicts are cached by SHA-256
in a `content_verdicts` table (in the fingerprint index's file when one is configured, else a
file of its own); a fetch that fails or times out leaves the metadata verdict, and the
evidence says why. A file every source called unknown (404) is cached as such for an hour
(UNKNOWN_TTL: the source may collect it later); other failures (a timeout, refused
credentials) are not cached, but remembered for the rest of one command, so a batch asks once
per file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import FingerprintIndexError, NotFoundError, TransportError, VendorError
from ..events.model import FileInfo, ModelMovementEvent
from .content import detect_content
from .formats import Detection, Method, ModelFormat, name_disguises
from .metadata import detect_metadata
from .window import HEAD_BYTES

if TYPE_CHECKING:
    from ...config import Config, Connection
    from ...content_sources import ContentSource
    from ...plugins import PluginHost
    from .fingerprints import FingerprintIndex

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 8
# Metadata at or above SETTLED_MODEL says "a model" firmly enough (a model extension, a
# standard model file name); at or below SETTLED_OTHER it says "not a model" (an everyday
# extension, text seen in the bytes). Between them, or a model of unknown format ("possibly a
# renamed model"), the bytes decide.
SETTLED_MODEL = 0.85
SETTLED_OTHER = 0.1
_VAGUE = (None, ModelFormat.UNKNOWN, ModelFormat.ARCHIVE)
UNKNOWN_TTL = 3600.0
_REMEMBERED = 100_000  # answers kept in memory for one command (or process)


def question_open(detection: Detection) -> bool:
    """Whether a metadata verdict leaves the model question open."""
    if detection.method != Method.METADATA:
        return False
    if detection.is_model and detection.format in _VAGUE:
        return True
    return SETTLED_OTHER < detection.confidence < SETTLED_MODEL


class HeadSource(Protocol):
    """What ContentFetch asks: a named source of file heads (a ConnectedSource, a test's)."""

    @property
    def name(self) -> str: ...

    def fetch_head(self, sha256: str, file_name: str | None, limit: int,
                   timeout: float) -> bytes: ...


@dataclass(frozen=True)
class ConnectedSource:
    """A plugin's ContentSource bound to its connection of the connections file."""

    source: ContentSource
    connection: Connection

    @property
    def name(self) -> str:
        return self.source.name

    def fetch_head(self, sha256: str, file_name: str | None, limit: int,
                   timeout: float) -> bytes:
        return self.source.fetch_head(self.connection, sha256, file_name, limit, timeout)

    def redact(self, text: str) -> str:
        return self.connection.redactor.redact(text)


def connected_sources(host: PluginHost, config: Config) -> list[ConnectedSource]:
    """The host's content sources whose connection the connections file has."""
    return [ConnectedSource(source, config.connections.get(source.connection))
            for source in host.content_sources.values()
            if source.connection in config.connections]


# --- the cache ------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS content_verdicts (
    sha256 TEXT PRIMARY KEY, verdict TEXT NOT NULL, evidence TEXT NOT NULL,
    fetched_at REAL NOT NULL, source TEXT NOT NULL
);
"""
_OURS = {"content_verdicts", "versions", "artifacts"}  # ours, or the fingerprint index's


@dataclass(frozen=True)
class ContentVerdict:
    """What a file's head showed, independent of the name it moved under."""

    source: str
    bytes_read: int
    confidence: float
    format: ModelFormat | None
    evidence: tuple[str, ...]
    cached: bool = False
    # The head's tensor listing (structure.StructuralFingerprint.to_dict()) when it held all
    # of it: what a structural match against the fingerprint index is made from.
    structure: dict[str, Any] | None = None


class ContentCache:
    """Content verdicts by SHA-256, in SQLite: the fingerprint index's file or one of its own
    (":memory:" for a dry run). Another tool's database is refused, never written to."""

    def __init__(self, path: str | Path = ":memory:", *, unknown_ttl: float = UNKNOWN_TTL):
        self.path = str(path)
        self.unknown_ttl = unknown_ttl
        self._lock = threading.Lock()
        if self.path != ":memory:" and not Path(self.path).exists():
            # 0600, as the dedupe store: the evidence quotes what the files' heads name.
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise FingerprintIndexError(f"{self.path}: cannot create the content cache: "
                                            f"{exc.strerror}") from None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False,
                                       isolation_level=None, timeout=30)
            tables = {row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not tables & _OURS:
                self._db.close()
                raise FingerprintIndexError(f"{self.path}: is not a crownguard content cache "
                                            "(another tool's SQLite database)")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise FingerprintIndexError(f"{self.path}: cannot be used as a content cache: "
                                        f"{exc}") from None

    def get(self, sha256: str) -> ContentVerdict | str | None:
        """The verdict, or why there is none (every source said unknown, lately), or None."""
        with self._lock:
            row = self._db.execute("SELECT verdict, evidence, source, fetched_at "
                                   "FROM content_verdicts WHERE sha256 = ?",
                                   (sha256.lower(),)).fetchone()
        if row is None:
            return None
        verdict, evidence = json.loads(row[0]), json.loads(row[1])
        if verdict.get("unknown"):
            fresh = time.time() - float(row[3]) < self.unknown_ttl
            return f"{evidence[0]} (cached)" if fresh and evidence else None
        fmt = verdict.get("format")
        structure = verdict.get("structure")
        return ContentVerdict(row[2], int(verdict["bytes_read"]), float(verdict["confidence"]),
                              ModelFormat(fmt) if fmt else None, tuple(evidence), cached=True,
                              structure=structure if isinstance(structure, dict) else None)

    def put(self, sha256: str, verdict: ContentVerdict) -> None:
        body = json.dumps({"confidence": verdict.confidence, "bytes_read": verdict.bytes_read,
                           "format": None if verdict.format is None else str(verdict.format),
                           "structure": verdict.structure})
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO content_verdicts VALUES (?,?,?,?,?)",
                             (sha256.lower(), body, json.dumps(list(verdict.evidence)),
                              time.time(), verdict.source))

    def put_unknown(self, sha256: str, sources: str, why: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO content_verdicts VALUES (?,?,?,?,?)",
                             (sha256.lower(), '{"unknown": true}', json.dumps([why]),
                              time.time(), sources))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def content_cache_for(index_path: str | None, dedupe_path: Path | None) -> ContentCache:
    """The cache in the fingerprint index's file when there is one, else beside the dedupe
    store (`<store>.content.db`), else in memory."""
    if index_path and index_path != ":memory:":
        return ContentCache(index_path)
    if dedupe_path is not None:
        return ContentCache(dedupe_path.with_name(f"{dedupe_path.stem}.content.db"))
    return ContentCache()


def fetch_for(host: PluginHost, config: Config, index_path: str | None,
              dedupe_path: Path | None) -> ContentFetch | None:
    """Content checks from the sources `config` reaches (Incydr's file download), cached in
    the index's file, else beside the dedupe store, else in memory; None without a source.
    What `triage`, `respond` and the service use. Raises FingerprintIndexError for a cache
    file that cannot be one."""
    sources = connected_sources(host, config)
    if not sources:
        return None
    return ContentFetch(sources, content_cache_for(index_path, dedupe_path))


# --- fetching ------------------------------------------------------------------------------


def _reason(exc: Exception, timeout: float) -> str:
    """Why a fetch gave nothing, for the evidence (the error messages are redacted)."""
    if isinstance(exc, NotFoundError):
        return f"{exc.status or 404} unknown file"
    if isinstance(exc, TransportError) and "timed out" in str(exc):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, VendorError):
        message = str(exc).split(": ", 1)[-1] if exc.status is None else \
            str(exc).split("): ", 1)[-1]
        return f"{exc.status} {message}" if exc.status else message
    return f"{type(exc).__name__}: {exc}"


class ContentFetch:
    """Fetch-and-detect for the files whose metadata leaves the model question open."""

    def __init__(self, sources: Sequence[HeadSource], cache: ContentCache | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, concurrency: int = DEFAULT_CONCURRENCY,
                 limit: int = HEAD_BYTES, clock: Callable[[], float] = time.monotonic):
        self.sources = tuple(sources)
        self.cache = cache if cache is not None else ContentCache()
        self.timeout, self.concurrency, self.limit = timeout, max(1, concurrency), limit
        self._failed: dict[str, str] = {}  # sha256 -> why, for this command only
        self._fetched: dict[str, ContentVerdict] = {}  # fetched by this command (not "cached")
        self._lock = threading.Lock()
        self.requests = 0  # fetches attempted (each source asked counts one)

    def close(self) -> None:
        self.cache.close()

    def wants(self, file: FileInfo, detection: Detection) -> bool:
        return bool(self.sources and file.sha256 and len(file.sha256) == 64
                    and question_open(detection))

    def detect(self, event: ModelMovementEvent,
               index: FingerprintIndex | None = None) -> Detection:
        """The event's verdict: the bytes decide when metadata leaves the question open."""
        from . import detect

        base = detect(event, index=index)
        if not self.wants(event.file, base):
            return base
        found = self._verdict(event.file)
        if isinstance(found, str):
            return Detection.verdict(base.confidence, base.format, base.method,
                                     [f"{found}; decided by metadata", *base.evidence],
                                     disguised=base.disguised, details=base.details)
        by_content = _by_content(found, event.file)
        return _by_structure(found, by_content, index) or by_content

    def prefetch(self, events: Iterable[ModelMovementEvent],
                 index: FingerprintIndex | None = None) -> None:
        """Fetch, `concurrency` at a time, the heads the events' open questions need (each
        file once), so that `detect` then finds them in the cache."""
        from . import detect

        if not self.sources:
            return
        wanted: dict[str, FileInfo] = {}
        for event in events:
            sha = (event.file.sha256 or "").lower()
            if sha in wanted or sha in self._failed or sha in self._fetched:
                continue
            if self.wants(event.file, detect(event, index=index)) and \
                    self.cache.get(sha) is None:
                wanted[sha] = event.file
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(wanted)),
                                thread_name_prefix="cg-content-fetch") as pool:
            list(pool.map(self._verdict, wanted.values()))

    def _verdict(self, file: FileInfo) -> ContentVerdict | str:
        """The cached or fetched content verdict, or why there is none."""
        sha = (file.sha256 or "").lower()
        with self._lock:
            known = self._fetched.get(sha) or self._failed.get(sha)
        if known is not None:
            return known
        cached = self.cache.get(sha)
        if cached is not None:
            return cached
        reasons = []
        unknown = True  # every source said it holds no such file
        for source in self.sources:
            with self._lock:
                self.requests += 1
            try:
                head = source.fetch_head(sha, file.name, self.limit, self.timeout)
            except Exception as exc:  # a failing source falls back to the next, then metadata
                reason = _reason(exc, self.timeout)
                unknown = unknown and isinstance(exc, NotFoundError)
                redact = getattr(source, "redact", None)
                reasons.append(f"content not fetched from {source.name}: "
                               f"{redact(reason) if redact else reason}")
                continue
            verdict = _judge(source.name, head, file.size, self.limit, file.name)
            self.cache.put(sha, verdict)
            with self._lock:
                if len(self._fetched) >= _REMEMBERED:  # the cache still holds them
                    self._fetched.clear()
                self._fetched[sha] = verdict
            return verdict
        why = "; ".join(reasons)
        if unknown:
            self.cache.put_unknown(sha, ", ".join(s.name for s in self.sources), why)
        with self._lock:
            if len(self._failed) >= _REMEMBERED:
                self._failed.clear()
            self._failed[sha] = why
        return why


def _judge(source: str, head: bytes, size: int | None, limit: int,
           name: str | None = None) -> ContentVerdict:
    from .structure import structural_fingerprint

    # A head shorter than asked for is the whole file; one as long may be a prefix.
    whole = len(head) < limit
    known = size if size is not None and size > len(head) else None
    detection = detect_content(head, size=None if whole else (known or len(head) + 1))
    structure = structural_fingerprint(head, name) if detection.is_model else None
    return ContentVerdict(source, len(head), detection.confidence, detection.format,
                          detection.evidence,
                          structure=structure.to_dict() if structure is not None else None)


def _by_structure(found: ContentVerdict, by_content: Detection,
                  index: FingerprintIndex | None) -> Detection | None:
    """The fetched head's tensors are a registered file's (a re-saved or converted copy): a
    structural fingerprint match, or None."""
    from .evidence import EvidenceKind
    from .structure import StructuralFingerprint

    if found.structure is None or index is None or not index.has_structures():
        return None
    try:
        match = index.match_structure(StructuralFingerprint.from_dict(found.structure))
    except (KeyError, TypeError, ValueError):  # a cache row of another shape: no match
        return None
    if match is None:
        return None
    return Detection.verdict(0.99 if match.complete else 0.95, by_content.format,
                             EvidenceKind.STRUCTURAL_FINGERPRINT,
                             [f"tensor structure of the content fetched from {found.source}: "
                              f"{match.describe()}", *by_content.evidence],
                             disguised=by_content.disguised, match=match.to_model_match(),
                             details={**by_content.details, "structure": match.to_dict()})


def _by_content(found: ContentVerdict, file: FileInfo) -> Detection:
    """A content verdict for a file under its name: disguised, or a name that over-promises."""
    cached = " (cached verdict)" if found.cached else ""
    first, *rest = found.evidence or ("no verdict",)
    evidence = [f"content fetched from {found.source}{cached}: {found.bytes_read:,} bytes: "
                f"{first}", *rest]
    is_model = found.confidence >= 0.5
    disguised = is_model and name_disguises(file.name)
    if disguised:
        evidence.append(f"the name '{file.name}' claims another file type")
    elif not is_model and detect_metadata(file).is_model:
        evidence.append(f"the name '{file.name}' suggests a model, but the content does not")
    details: dict[str, Any] = {"bytes_read": found.bytes_read, "content_source": found.source,
                               "cached": found.cached}
    return Detection.verdict(found.confidence, found.format, Method.CONTENT, evidence,
                             disguised=disguised, details=details)
