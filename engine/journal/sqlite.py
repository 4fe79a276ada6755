"""The default journal: one SQLite file in WAL mode, shared safely by threads and processes."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import JournalError, NotCanonical, RunEnded, RunHeldElsewhere, UnknownRun
from ..kinds import ENDED, ApprovalDecision, EntryKind, EventType, LeaseHolder, RunKind, RunStatus
from .audit import (
    GENESIS,
    ChainEntry,
    ChainProblem,
    JournalAudit,
    canonical_payload,
    entry_hash,
    sha256_text,
    write_jsonl,
)
from .base import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_LEASE_SECONDS,
    SCHEMA_VERSION,
    Approval,
    Journal,
    ProcessIdentity,
    RunRecord,
    utc_now,
)

# the SQLite journal ----------------------------------------------------------------------------

_SCHEMA = """
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


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so close() reaches every thread's one."""


def _status(value: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise JournalError(f"unknown run status {value!r} (one of: "
                           f"{', '.join(RunStatus)})") from None


def _payload_json(value: Any, what: str) -> str:
    try:
        return canonical_payload(value)
    except NotCanonical as exc:
        raise JournalError(f"cannot journal {what}: {exc} (redact and convert values first)"
                           ) from None


def _entry(row: sqlite3.Row) -> ChainEntry:
    return ChainEntry(seq=row["seq"], prev_hash=row["prev_hash"], hash=row["hash"],
                      kind=row["kind"], run_id=row["run_id"], type=row["type"], at=row["at"],
                      payload_json=row["payload"])


def _approval(row: sqlite3.Row) -> Approval:
    return Approval(row["run_id"], row["step_id"], ApprovalDecision(row["decision"]),
                    row["by_name"], row["comment"], row["at"], bool(row["accepted"]),
                    row["reason"], row["seq"])


def _owner(row: sqlite3.Row) -> ProcessIdentity | None:
    if row["owner_pid"] is None:
        return None
    return ProcessIdentity(row["owner_host"], row["owner_pid"], row["owner_boot_id"] or "",
                           row["owner_started"] or "")


def _holder(row: sqlite3.Row, now: float) -> LeaseHolder:
    """Who holds a run's lease now."""
    owner = _owner(row)
    if owner is None or row["lease_expires"] is None or row["lease_expires"] < now:
        return LeaseHolder.FREE
    if owner == ProcessIdentity.current():
        return LeaseHolder.MINE
    return LeaseHolder.FREE if owner.alive() is False else LeaseHolder.HELD


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], playbook=row["playbook"], playbook_path=row["playbook_path"],
        playbook_text=row["playbook_text"], playbook_sha256=row["playbook_sha256"],
        inputs=json.loads(row["inputs"]), status=RunStatus(row["status"]),
        kind=RunKind(row["kind"]), parent_run_id=row["parent_run_id"],
        config_path=row["config_path"], created_at=row["created_at"],
        updated_at=row["updated_at"], owner=_owner(row), lease_expires=row["lease_expires"],
        seq=row["seq"])


class SQLiteJournal(Journal):
    """The journal in one SQLite file (WAL): one connection per thread, short BEGIN IMMEDIATE
    write transactions (chain link and rows in one), a busy timeout to wait for other writers.

    `synchronous="FULL"` (default) makes an appended event survive a power cut; "NORMAL" only
    a process crash, for less cost (benchmarks/bench_journal.py measures both)."""

    def __init__(self, path: str | Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT, synchronous: str = "FULL"):
        if str(path) in ("", ":memory:"):
            raise JournalError("the journal must be a file (several connections share it)")
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise JournalError(f"synchronous must be NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.path = Path(path).expanduser()
        self.lease_seconds = lease_seconds
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous.upper()
        self._local = threading.local()
        self._pid = os.getpid()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._prepare_file()
        self._initialise()

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"

    # connections -------------------------------------------------------------------------------

    def _prepare_file(self) -> None:
        """Create the file readable by its owner only: it records who did what to whom."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise JournalError(f"cannot create the journal {self.path}: {exc.strerror}"
                               ) from None

    def _connect(self) -> _Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False, factory=_Connection)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from None
        return conn

    def _conn(self) -> _Connection:
        """This thread's connection (sqlite3 connections are not shared between threads)."""
        if os.getpid() != self._pid:  # forked: the parent's connections must not be used
            self._pid, self._local = os.getpid(), threading.local()
            self._connections = weakref.WeakSet()
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._connections.add(conn)
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:  # messages name tables and constraints, never values
            raise JournalError(f"journal {self.path}: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        """One short write transaction. BEGIN IMMEDIATE takes the write lock first, so reading
        the chain head and writing the entry after it cannot interleave with another writer."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _initialise(self) -> None:
        conn = self._conn()
        with self._errors():
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"journal {self.path}: cannot switch to WAL mode (got {mode})")
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(f"journal {self.path} has schema {version}, newer than this "
                                   f"crownguard understands ({SCHEMA_VERSION})")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        for conn in list(self._connections):
            conn.close()
        self._connections = weakref.WeakSet()
        self._local = threading.local()

    # writing -----------------------------------------------------------------------------------

    def _chain(self, conn: _Connection, kind: EntryKind, run_id: str, label: str, at: str,
               payload_json: str) -> int:
        """Add one entry after the chain head; only inside a write transaction."""
        head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        seq, prev = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS)
        digest = entry_hash(seq, prev, kind, run_id, payload_json)
        try:
            conn.execute("INSERT INTO entries (seq, prev_hash, hash, kind, run_id, type, at, "
                         "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, prev, digest, str(kind), run_id, label, at, payload_json))
        except sqlite3.IntegrityError:
            raise JournalError(f"journal {self.path}: entry seq {seq} exists beyond the chain "
                               "head; run `crownguard audit verify`") from None
        conn.execute("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) "
                     "DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, digest))
        return seq

    def _run_row(self, conn: _Connection, run_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM runs WHERE run_id = ?",
                                               (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id} in the journal {self.path}")
        return row

    def _hold(self, conn: _Connection, run_id: str, lease: float | None, *,
              status: RunStatus | None = None, updated_at: str | None = None) -> None:
        """Make this process the run's writer until `lease` (None: nobody needs to hold it)."""
        me = ProcessIdentity.current()
        conn.execute("UPDATE runs SET owner_host = ?, owner_pid = ?, owner_boot_id = ?, "
                     "owner_started = ?, lease_expires = ?, status = coalesce(?, status), "
                     "updated_at = coalesce(?, updated_at) WHERE run_id = ?",
                     (me.host, me.pid, me.boot_id, me.started, lease,
                      None if status is None else str(status), updated_at, run_id))

    def _lease(self, status: RunStatus) -> float | None:
        return None if status in ENDED else time.time() + self.lease_seconds

    def create_run(self, run_id: str, playbook: str, playbook_text: str, *,
                   inputs: dict[str, Any], playbook_path: str | None = None,
                   kind: RunKind | str = RunKind.RUN, parent_run_id: str | None = None,
                   config_path: str | None = None,
                   status: RunStatus | str = RunStatus.RUNNING) -> RunRecord:
        state, run_kind, now = _status(status), RunKind(kind), utc_now()
        inputs_json = _payload_json(inputs, f"the inputs of run {run_id}")
        text_sha = sha256_text(playbook_text)
        me = ProcessIdentity.current()
        payload = _payload_json({
            "playbook": playbook, "playbook_path": playbook_path, "playbook_sha256": text_sha,
            "inputs_sha256": sha256_text(inputs_json), "kind": str(run_kind),
            "parent_run_id": parent_run_id, "config_path": config_path, "created_at": now,
            "status": str(state), "writer": {"host": me.host, "pid": me.pid}}, "a run")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise JournalError(f"run {run_id} is already in the journal")
            seq = self._chain(conn, EntryKind.RUN, run_id, "run_created", now, payload)
            conn.execute(
                "INSERT INTO runs (run_id, seq, playbook, playbook_path, playbook_text, "
                "playbook_sha256, inputs, status, kind, parent_run_id, config_path, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, playbook, playbook_path, playbook_text, text_sha, inputs_json,
                 str(state), str(run_kind), parent_run_id, config_path, now, now))
            self._hold(conn, run_id, self._lease(state))
            return _record(self._run_row(conn, run_id))

    def append(self, event: dict[str, Any]) -> int:
        missing = [k for k in ("type", "run_id", "at") if not isinstance(event.get(k), str)]
        if missing:
            raise JournalError(f"an event needs string {', '.join(missing)}")
        try:
            kind = EventType(event["type"])
        except ValueError:
            raise JournalError(f"unknown event type {event['type']!r}") from None
        run_id, at = event["run_id"], event["at"]
        payload = _payload_json(event, f"a {kind} event of run {run_id}")
        finished = _status(event.get("status", "")) if kind == EventType.RUN_FINISHED else None
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            # A cancelled run stays so: the runner journals before it acts, so refusing its
            # events here is what guarantees that no step of it runs after the cancellation.
            if row["status"] == RunStatus.CANCELLED:
                raise RunEnded(f"run {run_id} was cancelled: it takes no more events")
            if kind == EventType.RUN_CANCELLED and row["status"] in ENDED:
                raise RunEnded(f"run {run_id} has already ended ({row['status']}): it cannot "
                               "be cancelled")
            if _holder(row, time.time()) == LeaseHolder.HELD:
                owner = _owner(row)
                raise RunHeldElsewhere(
                    f"run {run_id} is held by pid {owner.pid if owner else '?'} on "
                    f"{owner.host if owner else '?'}; this process (pid {os.getpid()}) lost it "
                    "and must stop driving it")
            seq = self._chain(conn, EntryKind.EVENT, run_id, str(kind), at, payload)
            status = finished or (RunStatus.CANCELLED if kind == EventType.RUN_CANCELLED
                                  else RunStatus(row["status"]))
            self._hold(conn, run_id, self._lease(status), status=status, updated_at=at)
        return seq

    def set_status(self, run_id: str, status: RunStatus | str, *, reason: str | None = None
                   ) -> None:
        state = _status(status)
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if row["status"] == state and reason is None:
                return  # already so: nothing happened, nothing to record
            if row["status"] == RunStatus.CANCELLED and state != RunStatus.CANCELLED:
                raise RunEnded(f"run {run_id} was cancelled: it cannot become {state}")
            self._set_status(conn, row, state, reason)

    def _set_status(self, conn: _Connection, row: sqlite3.Row, state: RunStatus,
                    reason: str | None) -> None:
        now, me = utc_now(), ProcessIdentity.current()
        payload = _payload_json({"status": str(state), "previous": row["status"],
                                 "reason": reason, "writer": {"host": me.host, "pid": me.pid}},
                                "a status change")
        self._chain(conn, EntryKind.STATUS, row["run_id"], "status", now, payload)
        conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?",
                     (str(state), now, row["run_id"]))
        if state != RunStatus.RUNNING:
            conn.execute("UPDATE runs SET lease_expires = NULL WHERE run_id = ?",
                         (row["run_id"],))

    def claim(self, run_id: str) -> bool:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if row["status"] in ENDED or _holder(row, time.time()) == LeaseHolder.HELD:
                return False
            if row["status"] != RunStatus.RUNNING:
                self._set_status(conn, row, RunStatus.RUNNING, "claimed to resume")
            self._hold(conn, run_id, self._lease(RunStatus.RUNNING))
            return True

    def renew_lease(self, run_id: str) -> bool:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if _owner(row) != ProcessIdentity.current() or row["status"] != RunStatus.RUNNING:
                return False
            self._hold(conn, run_id, self._lease(RunStatus.RUNNING))
            return True

    def record_approval(self, run_id: str, step_id: str, decision: ApprovalDecision | str,
                        by: str, *, comment: str | None = None, accepted: bool = True,
                        reason: str | None = None, at: str | None = None) -> Approval:
        try:
            choice = ApprovalDecision(decision)
        except ValueError:
            raise JournalError(f"decision must be approve or reject, not {decision!r}") from None
        at = at or utc_now()
        payload = _payload_json({"run_id": run_id, "step_id": step_id, "decision": str(choice),
                                 "by": by, "comment": comment, "at": at,
                                 "accepted": bool(accepted), "reason": reason}, "an approval")
        with self._write() as conn:
            self._run_row(conn, run_id)
            seq = self._chain(conn, EntryKind.APPROVAL, run_id, "approval", at, payload)
            conn.execute("INSERT INTO approvals (seq, run_id, step_id, decision, by_name, "
                         "comment, at, accepted, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, run_id, step_id, str(choice), by, comment, at, int(accepted),
                          reason))
        return Approval(run_id, step_id, choice, by, comment, at, bool(accepted), reason, seq)

    # reading -----------------------------------------------------------------------------------

    def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._errors():
            return self._conn().execute(sql, args).fetchall()

    def events(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._select("SELECT payload FROM entries WHERE run_id = ? AND kind = ? "
                            "ORDER BY seq", (run_id, str(EntryKind.EVENT)))
        return [json.loads(row["payload"]) for row in rows]

    def entries(self, run_id: str | None = None, since_seq: int = 0) -> Iterator[ChainEntry]:
        # Its own connection: a half-read iterator must not keep this thread's connection in a
        # read transaction under the next append.
        conn = self._connect()
        try:
            with self._errors():
                rows = (conn.execute("SELECT * FROM entries WHERE seq > ? ORDER BY seq",
                                     (since_seq,)) if run_id is None else
                        conn.execute("SELECT * FROM entries WHERE run_id = ? AND seq > ? "
                                     "ORDER BY seq", (run_id, since_seq)))
                for row in rows:
                    yield _entry(row)
        finally:
            conn.close()

    def get_run(self, run_id: str) -> RunRecord:
        with self._errors():
            return _record(self._run_row(self._conn(), run_id))

    def find_runs(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        # The lower bound lets the primary key narrow the scan; substr() decides.
        rows = self._select("SELECT * FROM runs WHERE run_id >= ?1 AND "
                            "substr(run_id, 1, length(?1)) = ?1 ORDER BY run_id LIMIT ?2",
                            (prefix, int(limit)))
        return [_record(row) for row in rows]

    def list_runs(self, status: RunStatus | str | None = None, limit: int = 100, *,
                  kind: RunKind | str | None = None, parent_run_id: str | None = None
                  ) -> list[RunRecord]:
        rows = self._select(
            "SELECT * FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) "
            "AND (?3 IS NULL OR parent_run_id = ?3) ORDER BY created_at DESC, seq DESC LIMIT ?4",
            (None if status is None else str(_status(status)),
             None if kind is None else str(RunKind(kind)), parent_run_id, int(limit)))
        return [_record(row) for row in rows]

    def interrupted_runs(self) -> list[RunRecord]:
        rows = self._select("SELECT * FROM runs WHERE status = ? ORDER BY created_at, seq",
                            (str(RunStatus.RUNNING),))
        now = time.time()
        return [_record(row) for row in rows if _holder(row, now) == LeaseHolder.FREE]

    def approvals(self, run_id: str) -> list[Approval]:
        rows = self._select("SELECT * FROM approvals WHERE run_id = ? ORDER BY seq", (run_id,))
        return [_approval(row) for row in rows]

    # audit -------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        rows = self._select("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        return (rows[0]["seq"], rows[0]["hash"]) if rows else (0, GENESIS)

    def export_jsonl(self, fp: IO[str], run_id: str | None = None, since_seq: int = 0) -> int:
        return write_jsonl(fp, self.entries(run_id, since_seq))

    def verify(self, anchor: tuple[int, str] | None = None,
               max_problems: int | None = 1000) -> list[ChainProblem]:
        conn = self._connect()

        def locate(digest: str) -> int | None:  # asked only where a link is broken
            row = conn.execute("SELECT seq FROM entries WHERE hash = ? LIMIT 1",
                               (digest,)).fetchone()
            return row["seq"] if row else None

        def hash_at(seq: int) -> str | None:
            row = conn.execute("SELECT hash FROM entries WHERE seq = ?", (seq,)).fetchone()
            return row["hash"] if row else None

        audit = JournalAudit(locate, max_problems)
        try:
            with self._errors():
                conn.execute("BEGIN")  # one snapshot of every table
                for row in conn.execute("SELECT * FROM entries ORDER BY seq"):
                    audit.feed(_entry(row))
                    if audit.stopped:
                        return audit.problems
                audit.chain.check_anchor(anchor, hash_at)
                head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
                audit.check_head((head["seq"], head["hash"]) if head else None)
                audit.check_runs(conn.execute("SELECT * FROM runs ORDER BY seq"))
                audit.check_approvals({**dict(row), "by": row["by_name"],
                                       "accepted": bool(row["accepted"])}
                                      for row in conn.execute("SELECT * FROM approvals"))
                return audit.problems
        finally:
            conn.close()
