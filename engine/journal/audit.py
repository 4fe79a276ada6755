"""The hash chain behind the journal: canonical JSON, entry hashes, verification, JSONL export.

Every journal entry (a run created, a run event, a status change, an approval) is chained to
the one before it:

    hash = SHA-256( canonical_json({"at", "kind", "payload", "prev_hash", "run_id", "seq",
                                    "type", "v": 2}) )

where `canonical_json` is `json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=True, allow_nan=False)` and the first entry's `prev_hash` is `GENESIS`. Editing,
removing or reordering an entry breaks its own hash or the link of the entry after it.
Entries written before schema 2 (`v` 1) hashed the envelope without `at`, `type` and `v`; for
them verification checks `at` and `type` against the copies their payload holds instead.

This module does no storage: a journal feeds its entries, in order, to `ChainVerifier`, and
`export.verify_jsonl` checks an exported file with the same code, so an auditor can verify a
SIEM copy without the database. A chain cannot prove that nothing was cut off its *end*: keep
the last `(seq, hash)` somewhere else (the journal's `head()`) and pass it as `anchor`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import NotCanonical
from ..kinds import EntryKind, EventType, ProblemKind, RunStatus

GENESIS = "0" * 64
# The hash formula entries are written with now: 2 chains `at` and `type` too (schema 2).
HASH_VERSION = 2
# How far away from its position an entry is looked for when its hash does not match there.
REORDER_WINDOW = 64


def canonical_json(value: Any) -> str:
    """The one JSON text of a value that every hash is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def _refuse(value: object) -> Any:
    # Never put the value in the message: it may be an unredacted Secret.
    raise NotCanonical(f"a {type(value).__name__} is not JSON")


def _string_keys(value: Any) -> bool:
    """Whether every mapping key in `value` is a string: then its canonical JSON is already
    what a JSON round trip would re-encode to (tuples and lists encode alike)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return False
            stack.extend(v for v in item.values() if isinstance(v, dict | list | tuple))
        elif isinstance(item, list | tuple):
            stack.extend(v for v in item if isinstance(v, dict | list | tuple))
    return True


def canonical_payload(payload: Any) -> str:
    """Canonical JSON of `payload` as a JSON round trip would leave it, so that what is stored
    re-encodes to itself: tuples become lists and integer keys strings, as any reader will
    see them. One serialisation when every key is a string already (the usual case)."""
    if _string_keys(payload):
        try:
            return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                              allow_nan=False, default=_refuse)
        except ValueError as exc:
            if isinstance(exc, NotCanonical):
                raise
            raise NotCanonical("NaN and infinity are not JSON") from None
    try:
        plain = json.loads(json.dumps(payload, default=_refuse, allow_nan=False))
    except ValueError as exc:
        if isinstance(exc, NotCanonical):
            raise
        raise NotCanonical("NaN and infinity are not JSON") from None
    except TypeError:
        raise NotCanonical("mixed or unsortable keys") from None
    return canonical_json(plain)


def entry_hash(seq: int, prev_hash: str, kind: str, run_id: str, payload_json: str, *,
               type: str = "", at: str = "", version: int = HASH_VERSION) -> str:
    """SHA-256 (hex) of the canonical envelope; `payload_json` is the stored canonical payload.

    The envelope is assembled as text (keys in sorted order) so that the hash is computed over
    exactly the bytes stored, never over a re-encoding of them. Version 1 (entries written
    before schema 2) leaves `at`, `type` and `v` out."""
    link = (f'"kind":{canonical_json(kind)},"payload":{payload_json},'
            f'"prev_hash":{canonical_json(prev_hash)},"run_id":{canonical_json(run_id)},'
            f'"seq":{int(seq)}')
    if version == 1:
        material = f"{{{link}}}"
    else:
        material = (f'{{"at":{canonical_json(at)},{link},"type":{canonical_json(type)},'
                    f'"v":{int(version)}}}')
    return hashlib.sha256(material.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class ChainEntry:
    """One stored journal entry with its chain fields. `type` names it for people: the event
    type, or run_created / status / approval."""

    seq: int
    prev_hash: str
    hash: str
    kind: str
    run_id: str
    type: str
    at: str
    payload_json: str
    v: int = 1  # the hash formula it was written with (HASH_VERSION since schema 2)

    @property
    def payload(self) -> Any:
        return json.loads(self.payload_json)

    def computed_hash(self, seq: int | None = None) -> str:
        return entry_hash(self.seq if seq is None else seq, self.prev_hash, self.kind,
                          self.run_id, self.payload_json, type=self.type, at=self.at,
                          version=self.v)

    def unchained_copies(self) -> list[str]:
        """For a version 1 entry, whose hash leaves `at` and `type` out: which of the two
        disagree with the copies its payload holds (an event's `type` and `at`, an approval's
        `at`, a run's `created_at`). A status entry of version 1 holds no copy of its `at`."""
        if self.v != 1:
            return []
        try:
            payload = self.payload
        except ValueError:
            return []
        if not isinstance(payload, dict):
            return []
        copies: dict[str, dict[str, Any]] = {
            str(EntryKind.EVENT): {"type": payload.get("type"), "at": payload.get("at")},
            str(EntryKind.RUN): {"type": "run_created", "at": payload.get("created_at")},
            str(EntryKind.APPROVAL): {"type": "approval", "at": payload.get("at")},
            str(EntryKind.STATUS): {"type": "status"},
        }
        expected = copies.get(self.kind, {})
        return [name for name, value in expected.items() if getattr(self, name) != value]

    def to_export(self) -> dict[str, Any]:
        """The JSONL export record: the hashed fields (`at` and `type` among them from `v` 2
        on; for `v` 1 they are checked against the payload's copies)."""
        return {"seq": self.seq, "prev_hash": self.prev_hash, "hash": self.hash,
                "kind": self.kind, "run_id": self.run_id, "type": self.type, "at": self.at,
                "payload": self.payload, "v": self.v}


@dataclass(frozen=True)
class ChainProblem:
    """One thing wrong, naming the entry (seq, run id, type) a person should look at.

    `last_seq` is set when one problem covers a range (entries renumbered together)."""

    kind: ProblemKind
    seq: int | None
    run_id: str | None
    type: str | None
    detail: str
    last_seq: int | None = None

    def __str__(self) -> str:
        where = "journal"
        if self.seq is not None:
            where = f"seq {self.seq}" + (f"..{self.last_seq}" if self.last_seq else "")
        about = ", ".join(p for p in (f"run {self.run_id}" if self.run_id else "",
                                      self.type or "") if p)
        return f"{where}{f' ({about})' if about else ''}: {self.kind}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "seq": self.seq, "last_seq": self.last_seq,
                "run_id": self.run_id, "type": self.type, "detail": self.detail}


def _short(digest: str) -> str:
    return digest[:12] + "…"


class ChainVerifier:
    """Checks entries fed in stored order; `problems` grows as it goes.

    `locate(hash)` (optional) answers at which seq an entry with that stored hash sits; it is
    only asked where a link is broken, to tell a reordering from a removal."""

    def __init__(self, locate: Callable[[str], int | None] | None = None,
                 max_problems: int | None = 1000):
        self.locate = locate
        self.max_problems = max_problems
        self.problems: list[ChainProblem] = []
        self.last: ChainEntry | None = None
        self.count = 0
        self._last_original: int | None = None  # seq the previous entry was written with
        self._last_moved = False
        self._moved_hashes: set[str] = set()
        self._shift: tuple[int, int] | None = None  # (problem index, offset) being extended
        self._version = 1  # the newest hash formula seen so far
        self.stopped = False

    # feeding -----------------------------------------------------------------------------------

    def feed(self, entry: ChainEntry) -> None:
        if self.stopped:
            return
        self.count += 1
        original = self._original_seq(entry)
        moved = original is not None and original != entry.seq
        self._check_link(entry, original, moved)
        if original is None:
            self._shift = None
            self._add(ProblemKind.EDITED, entry,
                      "its content no longer matches its hash (payload, kind, run id, type or "
                      "time changed)")
        elif moved:
            self._add_moved(entry, original)
        else:
            self._shift = None
        if original is not None and entry.v < self._version:
            # Rehashing with the older formula still breaks the next link; this names why.
            self._add(ProblemKind.EDITED, entry,
                      f"hashed with formula v{entry.v} after an entry of v{self._version}: "
                      "rewritten with the older formula, which leaves type and time out")
        unchained = entry.unchained_copies() if original is not None else []
        if unchained:
            self._add(ProblemKind.EDITED, entry,
                      f"its {' and '.join(unchained)} differ from the payload's copy (an entry "
                      "written before schema 2, whose hash leaves them out)")
        self._version = max(self._version, entry.v)
        if original is None:  # maybe moved far away: a broken link to it is explained
            self._moved_hashes.add(entry.hash)
        self.last = entry
        self._last_original = original
        self._last_moved = moved
        if self.max_problems is not None and len(self.problems) >= self.max_problems:
            self.stopped = True
            self.problems.append(ChainProblem(
                ProblemKind.INCOMPLETE, entry.seq, None, None,
                f"stopped after {self.max_problems} problems; later entries were not checked"))

    def feed_all(self, entries: Iterable[ChainEntry]) -> list[ChainProblem]:
        for entry in entries:
            self.feed(entry)
            if self.stopped:
                break
        return self.problems

    def check_anchor(self, anchor: tuple[int, str] | None, hash_at: Callable[[int], str | None]
                     ) -> None:
        """Compare with a head recorded elsewhere earlier: catches a cut or rewritten tail."""
        if anchor is None:
            return
        seq, digest = anchor
        found = hash_at(seq)
        if found is None:
            last = self.last.seq if self.last else 0
            self.problems.append(ChainProblem(
                ProblemKind.REMOVED, seq, None, None,
                f"the anchor entry is gone: the journal ends at seq {last}, the anchor "
                f"recorded seq {seq} (the tail was cut off)"))
        elif found != digest:
            self.problems.append(ChainProblem(
                ProblemKind.EDITED, seq, None, None,
                f"its hash {_short(found)} differs from the anchor's {_short(digest)} "
                "(the chain up to here was rewritten)"))

    # internals ---------------------------------------------------------------------------------

    def _original_seq(self, entry: ChainEntry) -> int | None:
        """The seq the entry was written with: its own, a nearby one (moved), or None."""
        if entry.computed_hash() == entry.hash:
            return entry.seq
        for distance in range(1, REORDER_WINDOW + 1):
            for candidate in (entry.seq + distance, entry.seq - distance):
                if candidate >= 1 and entry.computed_hash(candidate) == entry.hash:
                    return candidate
        return None

    def _check_link(self, entry: ChainEntry, original: int | None, moved: bool) -> None:
        previous = self.last
        expected_seq = previous.seq + 1 if previous else 1
        if entry.seq > expected_seq:
            missing = (f"seq {expected_seq}" if entry.seq == expected_seq + 1
                       else f"seqs {expected_seq}..{entry.seq - 1}")
            self.problems.append(ChainProblem(
                ProblemKind.REMOVED, expected_seq, None, None,
                f"{missing} missing: the chain goes from "
                f"{'the start' if previous is None else f'seq {previous.seq}'} to seq {entry.seq}",
                last_seq=entry.seq - 1 if entry.seq > expected_seq + 1 else None))
            return
        if entry.seq < expected_seq:  # a duplicate seq cannot be stored; a file can hold one
            self._add(ProblemKind.INSERTED, entry,
                      f"seq {entry.seq} appears again after seq {previous.seq if previous else 0}")
            return
        expected_link = previous.hash if previous else GENESIS
        if entry.prev_hash == expected_link:
            return
        if previous is None:
            self._add(ProblemKind.REMOVED, entry,
                      "the first entry does not start the chain: entries before it are missing")
            return
        if moved or self._last_moved or entry.prev_hash in self._moved_hashes:
            if original is not None and self._last_original is not None and \
                    self.locate is not None and self.locate(entry.prev_hash) is None:
                self._add(ProblemKind.REMOVED, entry,
                          f"the entry written as seq {original - 1} before it is missing")
            return  # otherwise the reordering already reported explains the broken link
        where = self.locate(entry.prev_hash) if self.locate is not None else None
        if where is None:
            self.problems.append(ChainProblem(
                ProblemKind.EDITED, previous.seq, previous.run_id, previous.type,
                f"its hash is not the one seq {entry.seq} links to ({_short(entry.prev_hash)}): "
                "the entry was rewritten and rehashed, or replaced"))
        else:
            self._add(ProblemKind.REORDERED, entry,
                      f"it links to the entry at seq {where} but follows seq {previous.seq}")

    def _add_moved(self, entry: ChainEntry, original: int) -> None:
        offset = original - entry.seq
        if self._shift is not None and self._shift[1] == offset:
            # Entries renumbered together (all moved by the same offset) make one problem.
            index = self._shift[0]
            first = self.problems[index]
            start = first.seq or entry.seq
            self.problems[index] = ChainProblem(
                ProblemKind.REORDERED, start, first.run_id, first.type,
                f"written as seq {start + offset}..{original}, now at seq {start}..{entry.seq} "
                "(renumbered)", last_seq=entry.seq)
            return
        self._add(ProblemKind.REORDERED, entry,
                  f"written as seq {original}, now at seq {entry.seq}")
        self._shift = (len(self.problems) - 1, offset)

    def _add(self, kind: ProblemKind, entry: ChainEntry, detail: str) -> None:
        self.problems.append(ChainProblem(kind, entry.seq, entry.run_id, entry.type, detail))


# the tables beside the chain --------------------------------------------------------------------

# Fields of a run's row that its chained run_created entry fixes.
CHAINED_RUN_FIELDS = ("playbook", "playbook_path", "playbook_sha256", "kind", "parent_run_id",
                      "config_path", "created_at")
APPROVAL_FIELDS = ("run_id", "step_id", "decision", "by", "comment", "at", "accepted", "reason")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JournalAudit:
    """The whole check of a journal, storage-agnostic: the chain entries in order, then the
    head record and the rows a journal keeps beside the chain for querying (runs, approvals),
    each compared with the chained entry it must agree with. A journal feeds it plain data."""

    def __init__(self, locate: Callable[[str], int | None] | None = None,
                 max_problems: int | None = 1000):
        self.chain = ChainVerifier(locate=locate, max_problems=max_problems)
        self.problems = self.chain.problems
        self._runs: dict[str, tuple[ChainEntry, dict[str, Any]]] = {}
        self._statuses: dict[str, str] = {}
        self._approvals: dict[int, dict[str, Any]] = {}

    @property
    def stopped(self) -> bool:
        return self.chain.stopped

    def feed(self, entry: ChainEntry) -> None:
        self.chain.feed(entry)
        try:
            payload = entry.payload
        except ValueError:
            return  # unreadable: reported as edited
        if not isinstance(payload, dict):
            return
        status = None
        if entry.kind == EntryKind.RUN:
            self._runs[entry.run_id] = (entry, payload)
            status = payload.get("status")
        elif entry.kind == EntryKind.STATUS or entry.type == EventType.RUN_FINISHED:
            status = payload.get("status")
        elif entry.type == EventType.RUN_CANCELLED:
            status = RunStatus.CANCELLED
        elif entry.kind == EntryKind.APPROVAL:
            self._approvals[entry.seq] = payload
        if status is not None:
            self._statuses[entry.run_id] = str(status)

    def check_head(self, head: tuple[int, str] | None) -> None:
        """Compare the journal's own head record with its last entry: a naive cut of the tail
        leaves the head ahead (an attacker who rewrites the head too needs an external anchor)."""
        last = self.chain.last
        if head is None:
            if last is not None:
                self._add(ProblemKind.EDITED, None, None, None, "the chain head record is missing")
            return
        seq, digest = head
        if last is None or seq > last.seq:
            first = last.seq + 1 if last else 1
            self._add(ProblemKind.REMOVED, first, None, None,
                      f"the tail was cut off: the chain head records seq {seq}, the last entry "
                      f"is seq {last.seq if last else 0}", seq if seq > first else None)
        elif seq < last.seq:
            self._add(ProblemKind.INSERTED, seq + 1, last.run_id, last.type,
                      f"entries after the recorded chain head (seq {seq})", last.seq)
        elif digest != last.hash:
            self._add(ProblemKind.EDITED, last.seq, last.run_id, last.type,
                      "its hash differs from the recorded chain head")

    def check_runs(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows with CHAINED_RUN_FIELDS, run_id, seq, status, playbook_text and inputs (the
        stored canonical JSON text)."""
        seen = set()
        for row in rows:
            run_id = row["run_id"]
            seen.add(run_id)
            if run_id not in self._runs:
                self._add(ProblemKind.INSERTED, row["seq"], run_id, None,
                          "a run row with no chained run_created entry")
                continue
            entry, payload = self._runs[run_id]
            differs = [f for f in CHAINED_RUN_FIELDS if payload.get(f) != row[f]]
            if sha256_text(row["playbook_text"]) != payload.get("playbook_sha256"):
                differs.append("playbook_text")
            if sha256_text(row["inputs"]) != payload.get("inputs_sha256"):
                differs.append("inputs")
            if row["status"] != self._statuses.get(run_id):
                differs.append("status")
            if row["seq"] != entry.seq:
                differs.append("seq")
            if differs:
                self._add(ProblemKind.EDITED, entry.seq, run_id, entry.type,
                          f"the run row differs from its chained record in: {', '.join(differs)}")
        for run_id, (entry, _) in self._runs.items():
            if run_id not in seen:
                self._add(ProblemKind.REMOVED, entry.seq, run_id, entry.type,
                          "the run's row was deleted")

    def check_approvals(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Rows with seq and APPROVAL_FIELDS."""
        seen = set()
        for row in rows:
            seq = row["seq"]
            seen.add(seq)
            payload = self._approvals.get(seq)
            if payload is None:
                self._add(ProblemKind.INSERTED, seq, row["run_id"], "approval",
                          "an approval row the chain never recorded")
                continue
            differs = [f for f in APPROVAL_FIELDS if payload.get(f) != row[f]]
            if differs:
                self._add(ProblemKind.EDITED, seq, row["run_id"], "approval",
                          f"the approval row differs from its chained record in: "
                          f"{', '.join(differs)}")
        for seq, payload in self._approvals.items():
            if seq not in seen:
                self._add(ProblemKind.REMOVED, seq, payload.get("run_id"), "approval",
                          "the approval row was deleted")

    def _add(self, kind: ProblemKind, seq: int | None, run_id: str | None, label: str | None,
             detail: str, last_seq: int | None = None) -> None:
        self.problems.append(ChainProblem(kind, seq, run_id, label, detail, last_seq))
