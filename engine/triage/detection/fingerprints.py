"""The fingerprint index: SHA-256 of every artifact file of every registered model version.

An event's file hash looked up here says "this is fraud-model v7 from MLflow, tagged
restricted" with certainty, which no file-name or content heuristic can. The index lives in
a local SQLite file and is refreshed incrementally from a source callable that lists one model
version's files: the MLflow plugin's `list_model_files` output (`{"files": [{"path", "size",
"sha256"}], ...}`) or any iterable of such file records.

    index = FingerprintIndex("fingerprints.sqlite")
    index.refresh(versions, source)          # only new or changed versions are listed
    index.lookup(sha256) -> [ModelMatch...]  # newest version first
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import FingerprintIndexError
from .formats import ModelMatch, format_from_name

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    registry TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    sensitivity TEXT, stamp TEXT, file_count INTEGER NOT NULL DEFAULT 0,
    refreshed_at REAL NOT NULL,
    PRIMARY KEY (registry, model, version)
);
CREATE TABLE IF NOT EXISTS artifacts (
    sha256 TEXT NOT NULL, registry TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER, format TEXT,
    PRIMARY KEY (registry, model, version, path)
);
CREATE INDEX IF NOT EXISTS artifacts_by_hash ON artifacts (sha256);
"""


@dataclass(frozen=True, slots=True)
class ModelVersionRef:
    """One registered model version to index; `stamp` changes when its files may have."""

    registry: str
    model: str
    version: str
    sensitivity: str | None = None
    stamp: str | None = None

    @classmethod
    def from_listing(cls, model_version: Mapping[str, Any], *, registry: str,
                     sensitivity_tag: str = "sensitivity") -> ModelVersionRef:
        """From one version a registry lists (`name`, `version`, `last_updated_timestamp`,
        `tags`): a registry plugin's `list_model_versions` item, or an MLflow ModelVersion."""
        raw = model_version.get("tags") or ()
        # Tags as an object (the plugins' output) or as [{key, value}] (MLflow's REST API).
        tags = dict(raw) if isinstance(raw, Mapping) else {
            t.get("key"): t.get("value") for t in raw if isinstance(t, Mapping)}
        stamp = model_version.get("last_updated_timestamp")
        return cls(registry, str(model_version["name"]), str(model_version["version"]),
                   tags.get(sensitivity_tag), None if stamp is None else str(stamp))


@dataclass
class RefreshReport:
    """What a refresh did; `errors` holds versions whose listing failed (kept as they were)."""

    listed: list[str] = field(default_factory=list)
    unchanged: int = 0
    retagged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: int = 0
    errors: dict[str, str] = field(default_factory=dict)


FileListing = Mapping[str, Any] | Iterable[Mapping[str, Any]]
FileSource = Callable[[ModelVersionRef], FileListing]


def _files_of(listing: FileListing) -> Iterable[Mapping[str, Any]]:
    if isinstance(listing, Mapping):
        files = listing.get("files")
        if not isinstance(files, list):
            raise ValueError("the listing has no 'files' list")
        return files
    return listing


def _version_key(version: str) -> tuple[int, int | str]:
    return (1, int(version)) if version.isdigit() else (0, version)


_RECHECK_SECONDS = 1.0
_ANSWERS = 65_536


class FingerprintIndex:
    """SHA-256 -> registered model version, in SQLite; safe to share between threads.

    Most events move files that are not registered, so a lookup first asks an in-memory set
    of the first 64 bits of every indexed hash and only queries SQLite on a hit. The set is
    reloaded when another process commits to the file (SQLite's data_version, checked at
    most once a second); it may hold stale hits, never misses.
    """

    def __init__(self, path: str | Path = ":memory:"):
        self.path = str(path)
        self._lock = threading.Lock()
        self._prefixes: set[int] = set()
        self._answers: dict[str, list[ModelMatch]] = {}
        self._answers_at = -1
        self._data_version: int | None = None
        self._checked_at = float("-inf")
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise FingerprintIndexError(f"{self.path}: cannot open the fingerprint index: "
                                        f"{exc}") from None
        try:
            self._open()
        except sqlite3.Error as exc:
            self._db.close()
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB":
                raise FingerprintIndexError(f"{self.path}: is not a crownguard fingerprint "
                                            "index (not a SQLite database)") from None
            raise FingerprintIndexError(f"{self.path}: cannot be used as a fingerprint "
                                        f"index: {exc}") from None
        except FingerprintIndexError:
            self._db.close()
            raise

    def _open(self) -> None:
        # Checked before the schema is created: another tool's database is not written to.
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not tables & {"versions", "artifacts"}:
            raise FingerprintIndexError(
                f"{self.path}: is not a crownguard fingerprint index (a SQLite database "
                f"holding {', '.join(sorted(tables)[:5])})")
        self._db.execute("PRAGMA journal_mode=WAL" if self.path != ":memory:"
                         else "PRAGMA journal_mode=MEMORY")
        self._db.executescript(_SCHEMA)
        with self._lock:
            self._reload_prefixes()

    def _reload_prefixes(self) -> None:
        self._prefixes = {int(row[0][:16], 16) for row in
                          self._db.execute("SELECT sha256 FROM artifacts")}
        self._answers = {}
        self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        self._checked_at = time.monotonic()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < _RECHECK_SECONDS:
            return
        self._checked_at = now
        if self._db.execute("PRAGMA data_version").fetchone()[0] != self._data_version:
            self._reload_prefixes()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> FingerprintIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # lookups ----------------------------------------------------------------------------------

    def lookup(self, sha256: str | None) -> list[ModelMatch]:
        """Every registered artifact with this hash, newest version first."""
        if not sha256 or len(sha256) != 64:
            return []
        digest = sha256.lower()
        try:
            prefix = int(digest[:16], 16)
        except ValueError:
            return []
        if prefix not in self._prefixes and \
                time.monotonic() - self._checked_at < _RECHECK_SECONDS:
            return []  # the common miss, without the lock (the set is swapped whole on reload)
        with self._lock:
            self._maybe_reload()
            if prefix not in self._prefixes:
                return []
            # Registered files move again and again: answers are kept until this connection
            # writes (total_changes) or another one commits (the reload clears them).
            if self._db.total_changes != self._answers_at:
                self._answers, self._answers_at = {}, self._db.total_changes
            matches = self._answers.get(digest)
            if matches is None:
                rows = self._db.execute(
                    "SELECT a.registry, a.model, a.version, a.path, v.sensitivity, a.size, "
                    "a.format FROM artifacts a JOIN versions v USING (registry, model, version) "
                    "WHERE a.sha256 = ?", (digest,)).fetchall()
                matches = [ModelMatch(*row) for row in rows]
                matches.sort(key=lambda m: (m.registry, m.model, _version_key(m.version)),
                             reverse=True)
                if len(self._answers) >= _ANSWERS:
                    self._answers.clear()
                self._answers[digest] = matches
        return list(matches)

    def best_match(self, sha256: str | None) -> ModelMatch | None:
        """The newest registered version holding this file, or None."""
        found = self.lookup(sha256)
        return found[0] if found else None

    def versions(self) -> list[ModelVersionRef]:
        with self._lock:
            rows = self._db.execute("SELECT registry, model, version, sensitivity, stamp "
                                    "FROM versions ORDER BY registry, model, version").fetchall()
        return [ModelVersionRef(*row) for row in rows]

    def stats(self) -> dict[str, int]:
        with self._lock:
            versions = self._db.execute("SELECT count(*) FROM versions").fetchone()[0]
            files = self._db.execute("SELECT count(*) FROM artifacts").fetchone()[0]
        return {"versions": int(versions), "files": int(files)}

    # updates ----------------------------------------------------------------------------------

    def add_version(self, ref: ModelVersionRef, listing: FileListing) -> int:
        """Replace one version's files with `listing`; returns how many were stored."""
        rows = []
        for item in _files_of(listing):
            digest = str(item.get("sha256") or "").lower()
            path = item.get("path")
            if not _SHA256.match(digest) or not isinstance(path, str):
                continue  # a directory entry or a file the source could not hash
            size = item.get("size")
            fmt = format_from_name(path)
            rows.append((digest, ref.registry, ref.model, ref.version, path,
                         size if isinstance(size, int) else None,
                         None if fmt is None else str(fmt)))
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM artifacts WHERE registry=? AND model=? AND version=?",
                                 (ref.registry, ref.model, ref.version))
                self._db.executemany("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?)",
                                     rows)
                self._db.execute(
                    "INSERT OR REPLACE INTO versions VALUES (?,?,?,?,?,?,?)",
                    (ref.registry, ref.model, ref.version, ref.sensitivity, ref.stamp, len(rows),
                     time.time()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._prefixes.update(int(row[0][:16], 16) for row in rows)
        return len(rows)

    def remove_version(self, registry: str, model: str, version: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM artifacts WHERE registry=? AND model=? AND version=?",
                             (registry, model, version))
            self._db.execute("DELETE FROM versions WHERE registry=? AND model=? AND version=?",
                             (registry, model, version))
            self._db.execute("COMMIT")

    def refresh(self, versions: Iterable[ModelVersionRef], source: FileSource, *,
                prune: bool = False, force: bool = False) -> RefreshReport:
        """Bring the index up to date with `versions`, listing only what is new or changed.

        A version already indexed with the same `stamp` is not listed again (a changed
        sensitivity tag is updated in place). With `prune`, indexed versions of the same
        registries that are absent from `versions` (deleted in the registry) are removed.
        A listing that fails is reported in `errors` and leaves that version as it was.
        """
        report = RefreshReport()
        with self._lock:
            known = {(r, m, v): (s, st) for r, m, v, s, st in self._db.execute(
                "SELECT registry, model, version, sensitivity, stamp FROM versions")}
        seen: set[tuple[str, str, str]] = set()
        registries: set[str] = set()
        for ref in versions:
            key = (ref.registry, ref.model, ref.version)
            seen.add(key)
            registries.add(ref.registry)
            label = f"{ref.model} v{ref.version} ({ref.registry})"
            previous = known.get(key)
            if previous is not None and not force and previous[1] == ref.stamp:
                if previous[0] != ref.sensitivity:
                    with self._lock:
                        self._db.execute("UPDATE versions SET sensitivity=? WHERE registry=? AND "
                                         "model=? AND version=?", (ref.sensitivity, *key))
                    report.retagged.append(label)
                else:
                    report.unchanged += 1
                continue
            try:
                listing = source(ref)
                report.files += self.add_version(ref, listing)
            except Exception as exc:  # one failing version must not stop the rest
                report.errors[label] = f"{type(exc).__name__}: {exc}"
                continue
            report.listed.append(label)
        if prune:
            for key in known.keys() - seen:
                if key[0] in registries:
                    self.remove_version(*key)
                    report.removed.append(f"{key[1]} v{key[2]} ({key[0]})")
        return report
