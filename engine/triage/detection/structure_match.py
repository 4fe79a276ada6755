"""Structural fingerprints in the fingerprint index: storing them and matching one.

Each registered file's fingerprint is a row of `structures` (its digest and tensor list) and
one `structure_keys` row per tensor (a hash of its name and shape), so a partial match is one
indexed join however many files the index holds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from .formats import ModelMatch
from .structure import StructuralFingerprint, TensorInfo

STRUCTURE_THRESHOLD = 0.9   # the share of tensors (name and shape) a partial match needs
MIN_TENSORS = 2             # a file of one tensor is too little to recognise
MAX_HEAD_TEXT = 12 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StructuralMatch:
    """A registered file with the same tensors as the file at hand (some or all of them)."""

    registry: str
    model: str
    version: str
    path: str
    sensitivity: str | None
    format: str
    matched: int      # tensors with the same name and shape
    tensors: int      # tensors of the file at hand
    registered: int   # tensors of the registered file
    same_dtypes: bool

    @property
    def share(self) -> float:
        return self.matched / max(self.tensors, self.registered, 1)

    @property
    def complete(self) -> bool:
        return self.matched == self.tensors == self.registered

    def describe(self) -> str:
        tag = f", {self.sensitivity}" if self.sensitivity else ""
        what = f"{self.model} v{self.version} ({self.registry}{tag}): {self.path}"
        if self.complete:
            dtypes = "" if self.same_dtypes else ", other dtypes"
            return (f"re-saved or converted copy of {what}, {self.matched} of "
                    f"{self.registered} tensors{dtypes}")
        return (f"{self.share:.0%} of its tensors match {what}: {self.matched} of "
                f"{max(self.tensors, self.registered)} by name and shape")

    def to_model_match(self) -> ModelMatch:
        return ModelMatch(self.registry, self.model, self.version, self.path, self.sensitivity,
                          None, self.format)

    def to_dict(self) -> dict[str, Any]:
        return {"registry": self.registry, "model": self.model, "version": self.version,
                "path": self.path, "sensitivity": self.sensitivity, "format": self.format,
                "matched": self.matched, "tensors": self.tensors, "registered": self.registered,
                "share": round(self.share, 4), "same_dtypes": self.same_dtypes,
                "complete": self.complete}


def key_hash(tensor: TensorInfo) -> str:
    return hashlib.sha256(tensor.key().encode()).hexdigest()[:16]


def decode_head(value: object) -> bytes | None:
    """A file record's `head`: bytes, or base64 text as the registry plugins return it."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str) and value and len(value) <= MAX_HEAD_TEXT:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def store_structures(db: sqlite3.Connection, version: tuple[str, str, str],
                     found: list[tuple[str, StructuralFingerprint]]) -> None:
    """Replace one version's fingerprints (inside the caller's transaction)."""
    db.execute("DELETE FROM structures WHERE registry=? AND model=? AND version=?", version)
    db.execute("DELETE FROM structure_keys WHERE registry=? AND model=? AND version=?", version)
    for path, fingerprint in found:
        listing = json.dumps(fingerprint.to_dict()["tensors"], separators=(",", ":"))
        db.execute("INSERT OR REPLACE INTO structures VALUES (?,?,?,?,?,?,?,?)",
                   (*version, path, fingerprint.format, fingerprint.digest,
                    len(fingerprint.tensors), listing))
        db.executemany("INSERT INTO structure_keys VALUES (?,?,?,?,?)",
                       [(key_hash(t), *version, path) for t in fingerprint.tensors])


def _version_order(version: str) -> tuple[int, int | str]:
    return (1, int(version)) if version.isdigit() else (0, version)


def best_structural_match(db: sqlite3.Connection, fingerprint: StructuralFingerprint
                          ) -> StructuralMatch | None:
    if len(fingerprint.tensors) < MIN_TENSORS:
        return None
    db.execute("CREATE TEMP TABLE IF NOT EXISTS probe (key TEXT PRIMARY KEY)")
    db.execute("DELETE FROM probe")
    db.executemany("INSERT OR IGNORE INTO probe VALUES (?)",
                   [(key_hash(t),) for t in fingerprint.tensors])
    # CROSS JOIN keeps SQLite's join order: the file's own keys drive the key index.
    rows = db.execute(
        "SELECT k.registry, k.model, k.version, k.path, count(*), s.tensors, s.format, "
        "s.digest, v.sensitivity FROM probe p CROSS JOIN structure_keys k ON k.key = p.key "
        "JOIN structures s USING (registry, model, version, path) "
        "JOIN versions v USING (registry, model, version) "
        "GROUP BY k.registry, k.model, k.version, k.path").fetchall()
    db.execute("DELETE FROM probe")
    size = len(fingerprint.tensors)
    best: tuple[Any, ...] | None = None
    for registry, model, version, path, matched, registered, fmt, digest, sensitivity in rows:
        share = matched / max(size, registered)
        if share < STRUCTURE_THRESHOLD or matched < MIN_TENSORS:
            continue
        rank = (share, digest == fingerprint.digest, _version_order(version))
        if best is None or rank > best[0]:
            best = (rank, registry, model, version, path, sensitivity, fmt, matched, registered,
                    digest)
    if best is None:
        return None
    _, registry, model, version, path, sensitivity, fmt, matched, registered, digest = best
    same = digest == fingerprint.digest or _same_dtypes(db, (registry, model, version, path),
                                                        fingerprint)
    return StructuralMatch(registry, model, version, path, sensitivity, fmt, matched, size,
                           registered, same)


def _same_dtypes(db: sqlite3.Connection, file: tuple[str, str, str, str],
                 fingerprint: StructuralFingerprint) -> bool:
    row = db.execute("SELECT listing FROM structures WHERE registry=? AND model=? AND "
                     "version=? AND path=?", file).fetchone()
    registered = {(n, tuple(s)): d for n, d, s in json.loads(row[0])} if row else {}
    return all(registered.get((t.name, t.shape), t.dtype) == t.dtype
               for t in fingerprint.tensors)
