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

from ..errors import JournalError, RunEnded, UnknownRun
from ..kinds import (
    ENDED,
    ApprovalDecision,
    EntryKind,
    LeaseHolder,
    ResumeFailureKind,
    RunKind,
    RunStatus,
)
from .audit import (
    GENESIS,
    HASH_VERSION,
    ChainEntry,
    ChainProblem,
    entry_hash,
)
from .base import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_LEASE_SECONDS,
    SCHEMA_VERSION,
    Approval,
    Journal,
    ProcessIdentity,
    ResumeFailure,
    RunRecord,
    utc_now,
)
from .export import write_jsonl
from .sqlite_access import SQLiteAccessEntries
from .sqlite_append import SQLiteAppends
from .sqlite_schema import (
    OPEN_WAITS,
    RESUME_FAILURES,
    SCHEMA,
    SCHEMA_2,
    Connection,
    approval_of,
    entry_of,
    holder_of,
    journal_json,
    new_run,
    owner_of,
    record_of,
    resume_failure_of,
    run_status,
    wal_pending,
)
from .sqlite_verify import verify_file
from .sqlite_waits import SQLiteOpenWaits

# the SQLite journal ----------------------------------------------------------------------------

class SQLiteJournal(SQLiteAppends, SQLiteAccessEntries, SQLiteOpenWaits, Journal):
    """The journal in one SQLite file (WAL): one connection per thread, short BEGIN IMMEDIATE
    write transactions (chain link and rows in one), a busy timeout to wait for other writers.

    `synchronous="FULL"` (default) makes an appended event survive a power cut; "NORMAL" only
    a process crash, for less cost (benchmarks/bench_journal.py measures both).

    `read_only=True` opens an existing file for reading only (SQLite `mode=ro`; on media where
    not even WAL's shared-memory file can be made, `immutable=1`): nothing is created, migrated
    or written, and every write raises JournalError. What `runs` and `audit` use."""

    def __init__(self, path: str | Path, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT, synchronous: str = "FULL",
                 read_only: bool = False):
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
        self._connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self.read_only = read_only
        self._uri_mode = ""  # "mode=ro" or "immutable=1" when read-only
        self._tables: set[str] = set()
        if read_only:
            self._open_read_only()
        else:
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

    def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise JournalError(f"no journal at {self.path}")
        for mode in ("mode=ro", "immutable=1"):
            if mode == "immutable=1" and wal_pending(self.path):
                raise JournalError(f"journal {self.path}: read-only here, and its -wal file "
                                   "holds entries not in the file yet: copy it after a "
                                   "checkpoint (PRAGMA wal_checkpoint(TRUNCATE))")
            self._uri_mode = mode
            try:
                version = self._conn().execute("PRAGMA user_version").fetchone()[0]
                self._conn().execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except (sqlite3.Error, JournalError) as exc:
                self.close()
                if mode == "immutable=1":
                    raise JournalError(f"cannot open the journal {self.path} read-only: {exc}"
                                       ) from None
        if version > SCHEMA_VERSION:
            raise JournalError(f"journal {self.path} has schema {version}, newer than this "
                               f"crownguard understands ({SCHEMA_VERSION})")
        self._tables = {row[0] for row in self._select(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _connect(self) -> Connection:
        try:
            target = (f"{self.path.absolute().as_uri()}?{self._uri_mode}" if self._uri_mode
                      else str(self.path))
            conn = sqlite3.connect(target, uri=bool(self._uri_mode), timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False,
                                   factory=Connection)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {self.path}: {exc}") from None
        return conn

    def _conn(self) -> Connection:
        """This thread's connection (sqlite3 connections are not shared between threads)."""
        if os.getpid() != self._pid:  # forked: the parent's connections must not be used
            self._pid, self._local = os.getpid(), threading.local()
            self._connections = weakref.WeakSet()
        conn: Connection | None = getattr(self._local, "conn", None)
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
    def _write(self) -> Iterator[Connection]:
        """One short write transaction. BEGIN IMMEDIATE takes the write lock first, so reading
        the chain head and writing the entry after it cannot interleave with another writer."""
        if self.read_only:
            raise JournalError(f"journal {self.path} was opened read-only")
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
                # A new file gets schema 1 and then the same migrations an old one does.
                steps = (([SCHEMA] if version < 1 else []) +
                         ([SCHEMA_2, RESUME_FAILURES] if version < 2 else []) + [OPEN_WAITS])
                for script in steps:
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                self._fill_open_waits(conn)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._tables = {row[0] for row in self._select(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def close(self) -> None:
        for conn in list(self._connections):
            conn.close()
        self._connections = weakref.WeakSet()
        self._local = threading.local()

    # writing -----------------------------------------------------------------------------------

    def _chain(self, conn: Connection, kind: EntryKind, run_id: str, label: str, at: str,
               payload_json: str) -> int:
        """Add one entry after the chain head; only inside a write transaction."""
        head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        seq, prev = (head["seq"] + 1, head["hash"]) if head else (1, GENESIS)
        digest = entry_hash(seq, prev, str(kind), run_id, payload_json, type=label, at=at)
        try:
            conn.execute("INSERT INTO entries (seq, prev_hash, hash, kind, run_id, type, at, "
                         "payload, v) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, prev, digest, str(kind), run_id, label, at, payload_json,
                          HASH_VERSION))
        except sqlite3.IntegrityError:
            raise JournalError(f"journal {self.path}: entry seq {seq} exists beyond the chain "
                               "head; run `crownguard audit verify`") from None
        conn.execute("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) "
                     "DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, digest))
        return seq

    def _run_row(self, conn: Connection, run_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM runs WHERE run_id = ?",
                                               (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(run_id, str(self.path))
        return row

    def _hold(self, conn: Connection, run_id: str, lease: float | None, *,
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
        made = new_run(run_id, playbook, playbook_text, inputs=inputs,
                       playbook_path=playbook_path, kind=kind, parent_run_id=parent_run_id,
                       config_path=config_path, status=status)
        state, run_kind, now = made.state, made.kind, made.at
        inputs_json, text_sha, payload = made.inputs_json, made.text_sha, made.payload
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise JournalError(f"run {run_id} is already in the journal")
            seq = self._chain(conn, EntryKind.RUN, run_id, "run_created", now, payload)
            me = ProcessIdentity.current()  # the run is this process's to write
            conn.execute(
                "INSERT INTO runs (run_id, seq, playbook, playbook_path, playbook_text, "
                "playbook_sha256, inputs, status, kind, parent_run_id, config_path, created_at, "
                "updated_at, owner_host, owner_pid, owner_boot_id, owner_started, lease_expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, seq, playbook, playbook_path, playbook_text, text_sha, inputs_json,
                 str(state), str(run_kind), parent_run_id, config_path, now, now, me.host,
                 me.pid, me.boot_id, me.started, self._lease(state)))
            return record_of(self._run_row(conn, run_id))

    def set_status(self, run_id: str, status: RunStatus | str, *, reason: str | None = None
                   ) -> None:
        state = run_status(status)
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if row["status"] == state and reason is None:
                return  # already so: nothing happened, nothing to record
            if row["status"] == RunStatus.CANCELLED and state != RunStatus.CANCELLED:
                raise RunEnded(f"run {run_id} was cancelled: it cannot become {state}")
            self._set_status(conn, row, state, reason)

    def _set_status(self, conn: Connection, row: sqlite3.Row, state: RunStatus,
                    reason: str | None) -> None:
        now, me = utc_now(), ProcessIdentity.current()
        payload = journal_json({"status": str(state), "previous": row["status"],
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
            if row["status"] in ENDED or holder_of(row, time.time()) == LeaseHolder.HELD:
                return False
            if row["status"] != RunStatus.RUNNING:
                self._set_status(conn, row, RunStatus.RUNNING, "claimed to resume")
            self._hold(conn, run_id, self._lease(RunStatus.RUNNING))
            return True

    def renew_lease(self, run_id: str) -> bool:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            if owner_of(row) != ProcessIdentity.current() or row["status"] != RunStatus.RUNNING:
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
        payload = journal_json({"run_id": run_id, "step_id": step_id, "decision": str(choice),
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
                    yield entry_of(row)
        finally:
            conn.close()

    def get_run(self, run_id: str) -> RunRecord:
        with self._errors():
            return record_of(self._run_row(self._conn(), run_id))

    def find_runs(self, prefix: str, limit: int = 2) -> list[RunRecord]:
        # The lower bound lets the primary key narrow the scan; substr() decides.
        rows = self._select("SELECT * FROM runs WHERE run_id >= ?1 AND "
                            "substr(run_id, 1, length(?1)) = ?1 ORDER BY run_id LIMIT ?2",
                            (prefix, int(limit)))
        return [record_of(row) for row in rows]

    def list_runs(self, status: RunStatus | str | None = None, limit: int = 100, *,
                  kind: RunKind | str | None = None, parent_run_id: str | None = None
                  ) -> list[RunRecord]:
        rows = self._select(
            "SELECT * FROM runs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) "
            "AND (?3 IS NULL OR parent_run_id = ?3) ORDER BY created_at DESC, seq DESC LIMIT ?4",
            (None if status is None else str(run_status(status)),
             None if kind is None else str(RunKind(kind)), parent_run_id, int(limit)))
        return [record_of(row) for row in rows]

    def interrupted_runs(self) -> list[RunRecord]:
        rows = self._select("SELECT * FROM runs WHERE status = ? ORDER BY created_at, seq",
                            (str(RunStatus.RUNNING),))
        now = time.time()
        return [record_of(row) for row in rows if holder_of(row, now) == LeaseHolder.FREE]

    def runs_page(self, status: RunStatus | str, after_seq: int = 0, limit: int = 500
                  ) -> list[RunRecord]:
        rows = self._select("SELECT * FROM runs WHERE status = ? AND seq > ? ORDER BY seq "
                            "LIMIT ?", (str(run_status(status)), int(after_seq), int(limit)))
        return [record_of(row) for row in rows]

    def record_resume_failure(self, run_id: str, kind: ResumeFailureKind | str, reason: str
                              ) -> ResumeFailure:
        what, now, me = ResumeFailureKind(kind), utc_now(), ProcessIdentity.current()
        with self._write() as conn:
            self._run_row(conn, run_id)
            conn.execute(
                "INSERT INTO resume_failures (run_id, kind, reason, count, first_at, last_at) "
                "VALUES (?1, ?2, ?3, 1, ?4, ?4) ON CONFLICT (run_id) DO UPDATE SET "
                "count = CASE WHEN kind = ?2 AND reason = ?3 THEN count + 1 ELSE 1 END, "
                "first_at = CASE WHEN kind = ?2 AND reason = ?3 THEN first_at ELSE ?4 END, "
                "kind = ?2, reason = ?3, last_at = ?4", (run_id, str(what), reason, now))
            # Free the lease this process took to resume it: a later resume (of this process,
            # a service calling resume_all again) may try it again.
            conn.execute("UPDATE runs SET lease_expires = NULL WHERE run_id = ? AND "
                         "owner_host = ? AND owner_pid = ?", (run_id, me.host, me.pid))
            row = conn.execute("SELECT * FROM resume_failures WHERE run_id = ?",
                               (run_id,)).fetchone()
            return resume_failure_of(row)

    def clear_resume_failure(self, run_id: str) -> None:
        if "resume_failures" not in self._tables:
            return
        if not self._select("SELECT 1 FROM resume_failures WHERE run_id = ?", (run_id,)):
            return  # the common case: no write transaction for nothing
        with self._write() as conn:
            conn.execute("DELETE FROM resume_failures WHERE run_id = ?", (run_id,))

    def resume_failures(self, run_ids: list[str] | None = None) -> dict[str, ResumeFailure]:
        if "resume_failures" not in self._tables:  # a schema 1 file opened read-only
            return {}
        if run_ids is None:
            rows = self._select("SELECT * FROM resume_failures")
        else:  # one JSON array parameter: no limit on how many ids
            rows = self._select("SELECT * FROM resume_failures WHERE run_id IN "
                                "(SELECT value FROM json_each(?))", (json.dumps(run_ids),))
        return {row["run_id"]: resume_failure_of(row) for row in rows}

    def approvals(self, run_id: str) -> list[Approval]:
        rows = self._select("SELECT * FROM approvals WHERE run_id = ? ORDER BY seq", (run_id,))
        return [approval_of(row) for row in rows]

    # audit -------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        rows = self._select("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        return (rows[0]["seq"], rows[0]["hash"]) if rows else (0, GENESIS)

    def export_jsonl(self, fp: IO[str], run_id: str | None = None, since_seq: int = 0) -> int:
        return write_jsonl(fp, self.entries(run_id, since_seq))

    def verify(self, anchor: tuple[int, str] | None = None,
               max_problems: int | None = 1000) -> list[ChainProblem]:
        conn = self._connect()
        try:
            with self._errors():
                return verify_file(conn, anchor, max_problems)
        finally:
            conn.close()
