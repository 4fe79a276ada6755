"""The JSONL export of the audit trail and its offline verification: a SIEM copy checked with
the same code as the journal, without the database. A line that is not an export record is a
reported problem (`damaged`, with its line number), never an exception."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import IO

from ..kinds import ProblemKind
from .audit import ChainEntry, ChainProblem, ChainVerifier, canonical_json, canonical_payload


def write_jsonl(fp: IO[str], entries: Iterable[ChainEntry]) -> int:
    """Write one export record per line; returns how many were written."""
    count = 0
    for entry in entries:
        fp.write(canonical_json(entry.to_export()))
        fp.write("\n")
        count += 1
    return count


def _export_entry(line: str) -> ChainEntry:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise TypeError(f"a JSON {type(record).__name__}, not an object")
    version = record.get("v", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version not in (1, 2):
        raise ValueError(f"unknown hash version {version!r}")
    seq = record["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise TypeError("seq is not an integer")
    return ChainEntry(seq=seq, prev_hash=str(record["prev_hash"]), hash=str(record["hash"]),
                      kind=str(record["kind"]), run_id=str(record["run_id"]),
                      type=str(record.get("type", "")), at=str(record.get("at", "")),
                      payload_json=canonical_payload(record["payload"]), v=version)


def read_jsonl(fp: IO[str], problems: list[ChainProblem] | None = None
               ) -> Iterator[ChainEntry]:
    """Entries back from an export (the payload re-encoded canonically, as it was hashed).

    A line that is not an export record raises ValueError naming its line number, or, when
    `problems` is given, is added there (`damaged`) and skipped."""
    for number, line in enumerate(fp, 1):
        if not line.strip():
            continue
        try:
            yield _export_entry(line)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # The reason names the field, never the line's content (it may be anything).
            what = (f"missing field {exc}" if isinstance(exc, KeyError)
                    else "not JSON" if isinstance(exc, json.JSONDecodeError)
                    else str(exc) if not isinstance(exc, RecursionError) else "nested too deep")
            detail = f"line {number}: not a journal export record ({what})"
            if problems is None:
                raise ValueError(detail) from None
            problems.append(ChainProblem(ProblemKind.DAMAGED, None, None, None, detail))


def verify_jsonl(fp: IO[str], anchor: tuple[int, str] | None = None,
                 max_problems: int | None = 1000) -> list[ChainProblem]:
    """Verify a full export (`export_jsonl()` without run_id) without the database.

    Lines out of seq order are reported as reordered; the chain is then checked in seq order.
    A line that is not an export record is reported as damaged (with its line number) and left
    out, so the entries around it show up as a gap too."""
    unreadable: list[ChainProblem] = []
    try:
        entries = list(read_jsonl(fp, unreadable))
    except UnicodeDecodeError as exc:
        return [*unreadable, ChainProblem(ProblemKind.DAMAGED, None, None, None,
                                          f"the file is not UTF-8 text (byte {exc.start})")]
    problems = unreadable + [ChainProblem(ProblemKind.REORDERED, e.seq, e.run_id, e.type,
                             f"line {i + 1}: seq {e.seq} comes after seq {entries[i - 1].seq}")
                for i, e in enumerate(entries) if i and e.seq < entries[i - 1].seq]
    by_hash = {e.hash: e.seq for e in entries}
    by_seq = {e.seq: e.hash for e in entries}
    verifier = ChainVerifier(locate=by_hash.get, max_problems=max_problems)
    verifier.feed_all(sorted(entries, key=lambda e: e.seq))
    verifier.check_anchor(anchor, by_seq.get)
    return problems + verifier.problems
