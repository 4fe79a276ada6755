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
from .structure import StructuralFingerprint, structural_fingerprint
from .structure_match import (
    StructuralMatch,
    best_structural_match,
    decode_head,
    store_structures,
)

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
CREATE TABLE IF NOT EXISTS structures (
    registry TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL,
    format TEXT NOT NULL, digest TEXT NOT NULL, tensors INTEGER NOT NULL, listing TEXT NOT NULL,
    PRIMARY KEY (registry, model, version, path)
);
CREATE INDEX IF NOT EXISTS structures_by_digest ON structures (digest);
CREATE TABLE IF NOT EXISTS structure_keys (
    key TEXT NOT NULL, registry TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS structure_keys_by_key ON structure_keys (key);
CREATE INDEX IF NOT EXISTS structure_keys_by_version ON structure_keys (registry, model, version);
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
        """From one version a registry lists (`name`, `version`, `last_updated_timestamp` or
        `stamp`, `tags`): a registry plugin's `list_model_versions` item, or an MLflow
        ModelVersion."""
        raw = model_version.get("tags") or ()
        # Tags as an object (the plugins' output) or as [{key, value}] (MLflow's REST API).
        tags = dict(raw) if isinstance(raw, Mapping) else {
            t.get("key"): t.get("value") for t in raw if isinstance(t, Mapping)}
        # `stamp` where a registry has no update time (a Hub repo's commit sha).
        stamp = model_version.get("stamp", model_version.get("last_updated_timestamp"))
        return cls(registry, str(model_version["name"]), str(model_version["version"]),
                   tags.get(sensitivity_tag), None if stamp is None else str(stamp))


@dataclass
class RefreshReport:
    """What a refresh did; `errors` holds versions whose listing failed (kept as they were).

    `listed` is every version listed (`added` ones new to the index, `changed` ones whose
    stamp moved); `files` counts the files stored, `files_added`/`files_changed`/
    `files_removed` how they differ from what the index held, `structures` the structural
    fingerprints stored."""

    listed: list[str] = field(default_factory=list)
    unchanged: int = 0
    retagged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    files: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    files_added: int = 0
    files_changed: int = 0
    files_removed: int = 0
    structures: int = 0
    versions: int = 0  # how many the registry listed (set by the caller that listed them)

    def summary(self) -> str:
        parts = [f"{len(self.added)} versions added", f"{len(self.changed)} changed",
                 f"{len(self.removed)} removed", f"{self.unchanged + len(self.retagged)} "
                 "unchanged", f"files: {self.files_added} added, {self.files_changed} changed, "
                 f"{self.files_removed} removed", f"{self.structures} structural fingerprints"]
        if self.retagged:
            parts.insert(3, f"{len(self.retagged)} retagged")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        return "; ".join(parts)


FileListing = Mapping[str, Any] | Iterable[Mapping[str, Any]]
FileSource = Callable[[ModelVersionRef], FileListing]


def _files_of(listing: FileListing) -> Iterable[Mapping[str, Any]]:
    if isinstance(listing, Mapping):
        files = listing.get("files")
        if not isinstance(files, list):
            raise ValueError("the listing has no 'files' list")
        return files
    return listing


def _structure_of(item: Mapping[str, Any], path: str) -> StructuralFingerprint | None:
    given = item.get("structure")
    if isinstance(given, StructuralFingerprint):
        return given
    if isinstance(given, Mapping):
        return StructuralFingerprint.from_dict(dict(given))
    head = decode_head(item.get("head"))
    return structural_fingerprint(head, path) if head else None


def _label(registry: str, model: str, version: str) -> str:
    """`fraud-model v7 (mlflow)`; a revision that is not a number: `acme/llm@main (huggingface)`."""
    return f"{model} {'v' if version.isdigit() else '@'}{version} ({registry})"


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

    def match_structure(self, fingerprint: StructuralFingerprint | None
                        ) -> StructuralMatch | None:
        """The registered file whose tensors this fingerprint shares, or None.

        Every tensor the same (name, dtype, shape) is an exact structural match; otherwise the
        share of tensors with the same name and shape, of the larger of the two files, must
        reach STRUCTURE_THRESHOLD (0.9). The best share wins, then the newest version."""
        if fingerprint is None or not fingerprint.tensors:
            return None
        with self._lock:
            return best_structural_match(self._db, fingerprint)

    def has_structures(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM structures LIMIT 1").fetchone() is not None

    def structures(self) -> list[dict[str, Any]]:
        """Every stored structural fingerprint: registry, model, version, path, format,
        digest and tensor count."""
        with self._lock:
            rows = self._db.execute(
                "SELECT registry, model, version, path, format, digest, tensors FROM structures "
                "ORDER BY registry, model, version, path").fetchall()
        keys = ("registry", "model", "version", "path", "format", "digest", "tensors")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def files(self) -> list[dict[str, Any]]:
        """Every indexed file: registry, model, version, path, sha256, size, format."""
        with self._lock:
            rows = self._db.execute(
                "SELECT registry, model, version, path, sha256, size, format FROM artifacts "
                "ORDER BY registry, model, version, path").fetchall()
        keys = ("registry", "model", "version", "path", "sha256", "size", "format")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def versions(self) -> list[ModelVersionRef]:
        with self._lock:
            rows = self._db.execute("SELECT registry, model, version, sensitivity, stamp "
                                    "FROM versions ORDER BY registry, model, version").fetchall()
        return [ModelVersionRef(*row) for row in rows]

    def stats(self) -> dict[str, int]:
        with self._lock:
            versions = self._db.execute("SELECT count(*) FROM versions").fetchone()[0]
            files = self._db.execute("SELECT count(*) FROM artifacts").fetchone()[0]
            shapes = self._db.execute("SELECT count(*) FROM structures").fetchone()[0]
        return {"versions": int(versions), "files": int(files), "structures": int(shapes)}

    # updates ----------------------------------------------------------------------------------

    def add_version(self, ref: ModelVersionRef, listing: FileListing) -> int:
        """Replace one version's files with `listing`; returns how many were stored.

        A file record may carry its structural fingerprint (`structure`: a
        StructuralFingerprint or its `to_dict()`) or the first bytes of the file (`head`:
        bytes or base64 text) to compute it from."""
        return self._replace_version(ref, listing, None)

    def _replace_version(self, ref: ModelVersionRef, listing: FileListing,
                         report: RefreshReport | None) -> int:
        rows = []
        structures: list[tuple[str, StructuralFingerprint]] = []
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
            found = _structure_of(item, path)
            if found is not None:
                structures.append((path, found))
        key = (ref.registry, ref.model, ref.version)
        with self._lock:
            before = dict(self._db.execute("SELECT path, sha256 FROM artifacts WHERE registry=? "
                                           "AND model=? AND version=?", key).fetchall())
            self._db.execute("BEGIN")
            try:
                self._db.execute("DELETE FROM artifacts WHERE registry=? AND model=? AND version=?",
                                 key)
                store_structures(self._db, key, structures)
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
        if report is not None:
            after = {row[4]: row[0] for row in rows}
            report.files_added += len(after.keys() - before.keys())
            report.files_removed += len(before.keys() - after.keys())
            report.files_changed += sum(before[p] != after[p] for p in after.keys() & before)
            report.structures += len(structures)
        return len(rows)

    def remove_version(self, registry: str, model: str, version: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM artifacts WHERE registry=? AND model=? AND version=?",
                             (registry, model, version))
            self._db.execute("DELETE FROM versions WHERE registry=? AND model=? AND version=?",
                             (registry, model, version))
            store_structures(self._db, (registry, model, version), [])
            self._db.execute("COMMIT")

    def stale(self, versions: Iterable[ModelVersionRef]) -> list[ModelVersionRef]:
        """The versions a refresh would list: new to the index, or with another stamp."""
        with self._lock:
            known = {(r, m, v): st for r, m, v, st in self._db.execute(
                "SELECT registry, model, version, stamp FROM versions")}
        return [ref for ref in versions
                if known.get((ref.registry, ref.model, ref.version), object()) != ref.stamp]

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
            label = _label(ref.registry, ref.model, ref.version)
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
                report.files += self._replace_version(ref, listing, report)
            except Exception as exc:  # one failing version must not stop the rest
                report.errors[label] = f"{type(exc).__name__}: {exc}"
                continue
            report.listed.append(label)
            (report.added if previous is None else report.changed).append(label)
        if prune:
            for key in known.keys() - seen:
                if key[0] in registries:
                    self.remove_version(*key)
                    report.removed.append(_label(*key))
        return report
