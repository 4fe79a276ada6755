"""The SQLite journal's schema, its migrations and the conversion of its rows to records."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import JournalError, NotCanonical, RunEnded, RunHeldElsewhere
from ..kinds import (
    ENDED,
    ApprovalDecision,
    EntryKind,
    EventType,
    LeaseHolder,
    ResumeFailureKind,
    RunKind,
    RunStatus,
)
from .audit import HASH_VERSION, ChainEntry, canonical_payload, entry_hash, sha256_text
from .base import Approval, ProcessIdentity, ResumeFailure, RunRecord, lease_holder, utc_now

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, kind TEXT NOT NULL,
    run_id TEXT NOT NULL, type TEXT NOT NULL, at TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_run ON entries (run_id, seq);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, playbook TEXT NOT NULL, playbook_path TEXT,
    playbook_text TEXT NOT NULL, playbook_sha256 TEXT NOT NULL, inputs TEXT NOT NULL,
    status TEXT NOT NULL, kind TEXT NOT NULL, parent_run_id TEXT, config_path TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, owner_host TEXT, owner_pid INTEGER,
    owner_boot_id TEXT, owner_started TEXT, lease_expires REAL);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created_at);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id);
CREATE TABLE IF NOT EXISTS approvals (
    seq INTEGER PRIMARY KEY, run_id TEXT NOT NULL, step_id TEXT NOT NULL,
    decision TEXT NOT NULL, by_name TEXT NOT NULL, comment TEXT, at TEXT NOT NULL,
    accepted INTEGER NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS approvals_by_run ON approvals (run_id, seq);
"""
# Schema 1 -> 2: entries say which hash formula they were written with (1: without at and
# type, as before; 2: with them), and resume failures get a table.
SCHEMA_2 = """
ALTER TABLE entries ADD COLUMN v INTEGER NOT NULL DEFAULT 1;
"""
RESUME_FAILURES = """
CREATE TABLE IF NOT EXISTS resume_failures (
    run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    first_at TEXT NOT NULL, last_at TEXT NOT NULL);
"""
# Schema 2 -> 3: the open waits and their deadlines (see `waits`), filled from the chain.
OPEN_WAITS = """
CREATE TABLE IF NOT EXISTS open_waits (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, seq INTEGER NOT NULL, expires_at REAL,
    PRIMARY KEY (run_id, step_id));
CREATE INDEX IF NOT EXISTS open_waits_by_deadline ON open_waits (expires_at);
"""


# Rows of any journal: sqlite3.Row or a PostgreSQL dict row.
Row = sqlite3.Row | Mapping[str, Any]


class Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so close() reaches every thread's one."""


def run_status(value: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise JournalError(f"unknown run status {value!r} (one of: "
                           f"{', '.join(RunStatus)})") from None


def journal_json(value: Any, what: str) -> str:
    try:
        return canonical_payload(value)
    except NotCanonical as exc:
        raise JournalError(f"cannot journal {what}: {exc} (redact and convert values first)"
                           ) from None


@dataclass(frozen=True)
class NewRun:
    """What both journals store for a new run: its state, and the chained `run_created`
    payload (digests of the playbook and inputs, who writes it)."""

    state: RunStatus
    kind: RunKind
    at: str
    inputs_json: str
    text_sha: str
    payload: str


def new_run(run_id: str, playbook: str, playbook_text: str, *, inputs: dict[str, Any],
            playbook_path: str | None, kind: RunKind | str, parent_run_id: str | None,
            config_path: str | None, status: RunStatus | str) -> NewRun:
    state, run_kind, now = run_status(status), RunKind(kind), utc_now()
    inputs_json = journal_json(inputs, f"the inputs of run {run_id}")
    text_sha = sha256_text(playbook_text)
    me = ProcessIdentity.current()
    payload = journal_json({
        "playbook": playbook, "playbook_path": playbook_path, "playbook_sha256": text_sha,
        "inputs_sha256": sha256_text(inputs_json), "kind": str(run_kind),
        "parent_run_id": parent_run_id, "config_path": config_path, "created_at": now,
        "status": str(state), "writer": {"host": me.host, "pid": me.pid}}, "a run")
    return NewRun(state, run_kind, now, inputs_json, text_sha, payload)


@dataclass(frozen=True)
class NewEvent:
    """A run event checked for appending: its type, run, time, payload and, for
    run_finished, the status it ends the run with."""

    kind: EventType
    run_id: str
    at: str
    payload: str
    finished: RunStatus | None


def new_event(event: dict[str, Any]) -> NewEvent:
    missing = [k for k in ("type", "run_id", "at") if not isinstance(event.get(k), str)]
    if missing:
        raise JournalError(f"an event needs string {', '.join(missing)}")
    try:
        kind = EventType(event["type"])
    except ValueError:
        raise JournalError(f"unknown event type {event['type']!r}") from None
    run_id = event["run_id"]
    payload = journal_json(event, f"a {kind} event of run {run_id}")
    finished = run_status(event.get("status", "")) if kind == EventType.RUN_FINISHED else None
    return NewEvent(kind, run_id, event["at"], payload, finished)


def checked_events(events: list[dict[str, Any]]) -> list[NewEvent]:
    """The events of one `append_many`, checked: all of one run."""
    checked = [new_event(event) for event in events]
    if any(event.run_id != checked[0].run_id for event in checked):
        raise JournalError("append_many takes the events of one run")
    return checked


def event_rows(seq: int, prev: str, checked: list[NewEvent]) -> list[tuple[Any, ...]]:
    """The entries rows (seq, prev_hash, hash, kind, run_id, type, at, payload, v) of events
    chained after the head (seq, prev)."""
    rows = []
    for event in checked:
        seq, kind = seq + 1, str(event.kind)
        digest = entry_hash(seq, prev, str(EntryKind.EVENT), event.run_id, event.payload,
                            type=kind, at=event.at)
        rows.append((seq, prev, digest, str(EntryKind.EVENT), event.run_id, kind, event.at,
                     event.payload, HASH_VERSION))
        prev = digest
    return rows


def run_events(status: RunStatus, checked: list[NewEvent]) -> RunStatus:
    """The run's status after its events, or RunEnded: a cancelled run takes no more events,
    and a run that has ended cannot be cancelled."""
    for event in checked:
        if status == RunStatus.CANCELLED:
            raise RunEnded(f"run {event.run_id} was cancelled: it takes no more events")
        if event.kind == EventType.RUN_CANCELLED and status in ENDED:
            raise RunEnded(f"run {event.run_id} has already ended ({status}): it cannot be "
                           "cancelled")
        status = event.finished or (RunStatus.CANCELLED if event.kind == EventType.RUN_CANCELLED
                                    else status)
    return status


def refuse_held(row: Row, now: float) -> None:
    """RunHeldElsewhere when another live process holds the run's lease."""
    if holder_of(row, now) == LeaseHolder.HELD:
        owner = owner_of(row)
        raise RunHeldElsewhere(
            f"run {row['run_id']} is held by pid {owner.pid if owner else '?'} on "
            f"{owner.host if owner else '?'}; this process (pid {os.getpid()}) lost it and "
            "must stop driving it")


def lease_kept(row: Row, status: RunStatus, now: float, lease_seconds: float) -> bool:
    """True when appending leaves the run's lease as it is: the run goes on, this process
    holds it, and more than half of it is left (the heartbeat renews it)."""
    expires = row["lease_expires"]
    return (status not in ENDED and expires is not None
            and expires - now > lease_seconds / 2 and holder_of(row, now) == LeaseHolder.MINE)


def entry_of(row: Row) -> ChainEntry:
    return ChainEntry(seq=row["seq"], prev_hash=row["prev_hash"], hash=row["hash"],
                      kind=row["kind"], run_id=row["run_id"], type=row["type"], at=row["at"],
                      payload_json=row["payload"],
                      v=row["v"] if "v" in row.keys() else 1)  # a schema 1 file read-only


def resume_failure_of(row: Row) -> ResumeFailure:
    return ResumeFailure(row["run_id"], ResumeFailureKind(row["kind"]), row["reason"],
                         row["count"], row["first_at"], row["last_at"])


def approval_of(row: Row) -> Approval:
    return Approval(row["run_id"], row["step_id"], ApprovalDecision(row["decision"]),
                    row["by_name"], row["comment"], row["at"], bool(row["accepted"]),
                    row["reason"], row["seq"])


def owner_of(row: Row) -> ProcessIdentity | None:
    if row["owner_pid"] is None:
        return None
    return ProcessIdentity(row["owner_host"], row["owner_pid"], row["owner_boot_id"] or "",
                           row["owner_started"] or "")


def holder_of(row: Row, now: float) -> LeaseHolder:
    """Who holds a run's lease now."""
    return lease_holder(owner_of(row), row["lease_expires"], now)


def record_of(row: Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], playbook=row["playbook"], playbook_path=row["playbook_path"],
        playbook_text=row["playbook_text"], playbook_sha256=row["playbook_sha256"],
        inputs=json.loads(row["inputs"]), status=RunStatus(row["status"]),
        kind=RunKind(row["kind"]), parent_run_id=row["parent_run_id"],
        config_path=row["config_path"], created_at=row["created_at"],
        updated_at=row["updated_at"], owner=owner_of(row), lease_expires=row["lease_expires"],
        seq=row["seq"])


def wal_pending(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except OSError:
        return False
