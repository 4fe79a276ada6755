"""The journal in PostgreSQL: one database shared by any number of processes and machines.

Same interface, records, chain and checks as the SQLite journal. Every write is one short
transaction on a pooled connection (psycopg 3, psycopg_pool): the run's row is locked first
(`FOR UPDATE`), then the chain head's single row, so appends from everywhere form one gap-free
chain (seq, prev_hash) and the entry commits together with the rows it records. A claim that
finds the run's row locked by another claimer gives up at once (`SKIP LOCKED`): somebody else
is taking it. Schema migrations run at start (see `postgres_schema`).

The DSN's password is a secret: the journal names itself by user, host, port and database
(`name`), registers the password with a live Redactor, and masks it in every error.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from ..errors import JournalError, JournalUnavailable, RunEnded, UnknownRun
from ..kinds import (
    ENDED,
    ApprovalDecision,
    EntryKind,
    LeaseHolder,
    ResumeFailureKind,
    RunKind,
    RunStatus,
)
from .audit import GENESIS, HASH_VERSION, ChainProblem, entry_hash
from .base import (
    DEFAULT_LEASE_SECONDS,
    Approval,
    Journal,
    ProcessIdentity,
    ResumeFailure,
    RunRecord,
    utc_now,
)
from .export import write_jsonl
from .postgres_access import PostgresAccessEntries
from .postgres_chain import APPEND, append_args
from .postgres_reads import PostgresReads
from .postgres_schema import Target, check_version, migrate, schema_version
from .postgres_verify import verify_database
from .postgres_waits import PostgresOpenWaits, pg_sql
from .sqlite_schema import (
    checked_events,
    holder_of,
    journal_json,
    lease_kept,
    new_run,
    owner_of,
    record_of,
    refuse_held,
    resume_failure_of,
    run_events,
    run_status,
)
from .waits import wait_change

Row = dict[str, Any]



# Once the database was found gone, waiting the pool's full timeout for a connection only holds
# the caller: it is told at once (JournalUnavailable) until a connection works again.
UNREACHABLE_WAIT = 1.0
_RUN_ROW = {"": "SELECT * FROM runs WHERE run_id = %s",
            "FOR UPDATE": "SELECT * FROM runs WHERE run_id = %s FOR UPDATE",
            "FOR SHARE": "SELECT * FROM runs WHERE run_id = %s FOR SHARE"}
_HEAD = "SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE"
_INSERT_ENTRY = ("INSERT INTO entries (seq, prev_hash, hash, kind, run_id, type, at, payload, v) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
_MOVE_HEAD = "UPDATE chain_head SET seq = %s, hash = %s WHERE id = 1"


class PostgresJournal(PostgresReads, PostgresOpenWaits, PostgresAccessEntries, Journal):
    """The journal in a PostgreSQL database (`postgresql://user@host:port/db`).

    `read_only=True` neither migrates nor writes (every write raises JournalError); the
    tables must exist. `pool_size` bounds the connections this process opens."""

    def __init__(self, dsn: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 read_only: bool = False, pool_size: int = 8, connect_timeout: float = 10.0,
                 migrate_schema: bool = True):
        self.target = Target.parse(dsn)
        self.name = self.target.name
        self.redactor = self.target.redactor
        self.lease_seconds = lease_seconds
        self.read_only = read_only
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.applied: list[int] = []
        self._pid = os.getpid()
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._unreachable = False  # the last operation found the database gone
        with self._errors(), self._direct() as conn:
            if read_only or not migrate_schema:
                version = schema_version(conn)
                check_version(version, self.name)
                if version == 0:
                    raise JournalError(f"no journal in {self.name} (its tables do not exist: "
                                       "run `crownguard journal migrate`)")
            else:
                self.applied = migrate(conn, self.name)

    def __repr__(self) -> str:
        return f"PostgresJournal({self.name!r})"

    # connections -------------------------------------------------------------------------------

    @contextmanager
    def _direct(self) -> Iterator[Any]:
        """One connection outside the pool (start-up: errors show at once, not after a pool
        timeout)."""
        import psycopg
        from psycopg.rows import dict_row

        conn = psycopg.connect(self.target.dsn, autocommit=True, row_factory=dict_row,
                               connect_timeout=max(1, int(self.connect_timeout)))
        try:
            yield conn
        finally:
            conn.close()

    def _connections(self) -> Any:
        pool = self._pool
        if pool is not None and os.getpid() == self._pid:
            return pool
        with self._pool_lock:  # threads that start together open one pool
            if self._pool is None or os.getpid() != self._pid:
                # After fork() the parent's pool (its sockets, its threads) is not ours.
                self._pid, self._pool = os.getpid(), self._open_pool()
            return self._pool

    def _open_pool(self) -> Any:
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        return ConnectionPool(
            self.target.dsn, min_size=1, max_size=max(1, self.pool_size), open=True,
            timeout=max(self.connect_timeout, 30.0), name="crownguard-journal",
            kwargs={"autocommit": True, "row_factory": dict_row,
                    "connect_timeout": max(1, int(self.connect_timeout))})

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except psycopg.OperationalError as exc:  # the database went away: retry later
            self._unreachable = True
            raise JournalUnavailable(f"journal {self.name}: {self.target.message(exc)}"
                                     ) from None
        except psycopg.Error as exc:  # names tables and constraints; the password is masked
            raise JournalError(f"journal {self.name}: {self.target.message(exc)}") from None
        except PoolTimeout:
            self._unreachable = True
            raise JournalUnavailable(f"journal {self.name}: no connection to the database "
                                     "now") from None
        self._unreachable = False

    def _pooled(self) -> Any:
        return self._connections().connection(
            timeout=UNREACHABLE_WAIT if self._unreachable else None)

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._errors(), self._pooled() as conn:
            yield conn

    @contextmanager
    def _write(self, pipelined: bool = False) -> Iterator[Any]:
        """One short write transaction (committed on leaving, rolled back on an error).

        `pipelined`: in pipeline mode the statements queue and go out together, BEGIN and
        COMMIT too, so the transaction costs two round trips (its reads, then its writes with
        the commit) however many statements it has. Reading a result sends what is queued."""
        if self.read_only:
            raise JournalError(f"journal {self.name} was opened read-only")
        import psycopg

        with self._errors(), self._pooled() as conn:
            try:
                if not pipelined:
                    with conn.transaction():
                        yield conn
                    return
                try:
                    with conn.pipeline():  # leaving it sends what is queued and waits
                        conn.execute("BEGIN")
                        yield conn
                        conn.execute("COMMIT")
                except BaseException:
                    conn.rollback()  # what was queued after an error never ran
                    raise
            except psycopg.errors.UniqueViolation as exc:  # rolled back
                if exc.diag.constraint_name != "entries_pkey":
                    raise
                raise JournalError(f"journal {self.name}: an entry with a seq after the chain "
                                   "head exists already; run `crownguard audit verify`"
                                   ) from None

    def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        with self._read() as conn:
            return list(conn.execute(sql, args).fetchall())

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None and os.getpid() == self._pid:
                self._pool.close()
            self._pool = None

    # writing -----------------------------------------------------------------------------------

    def _chain(self, conn: Any, kind: EntryKind, run_id: str, label: str, at: str,
               payload_json: str) -> int:
        """Add one entry after the chain head. The head's row lock, held to the commit, makes
        every writer wait for the one before it: no two entries get one seq."""
        seq, prev = self._head_of(conn.execute(_HEAD).fetchone())
        seq += 1
        digest = entry_hash(seq, prev, str(kind), run_id, payload_json, type=label, at=at)
        conn.execute(_INSERT_ENTRY, (seq, prev, digest, str(kind), run_id, label, at,
                                     payload_json, HASH_VERSION))
        conn.execute(_MOVE_HEAD, (seq, digest))
        return seq

    def _run_row(self, conn: Any, run_id: str, lock: str = "") -> Row:
        row: Row | None = conn.execute(_RUN_ROW[lock], (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(run_id, str(self.name))
        return row

    def _hold(self, conn: Any, run_id: str, lease: float | None, *,
              status: RunStatus | None = None, updated_at: str | None = None) -> None:
        me = ProcessIdentity.current()
        conn.execute("UPDATE runs SET owner_host = %s, owner_pid = %s, owner_boot_id = %s, "
                     "owner_started = %s, lease_expires = %s, status = coalesce(%s, status), "
                     "updated_at = coalesce(%s, updated_at) WHERE run_id = %s",
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
        me, lease = ProcessIdentity.current(), self._lease(state)
        with self._write(pipelined=True) as conn:
            # The head's lock first: a second create_run of the same id waits, then sees it.
            head = conn.execute(_HEAD)
            if conn.execute("SELECT 1 FROM runs WHERE run_id = %s", (run_id,)).fetchone():
                raise JournalError(f"run {run_id} is already in the journal")
            seq, prev = self._head_of(head.fetchone())
            seq += 1
            digest = entry_hash(seq, prev, str(EntryKind.RUN), run_id, payload,
                                type="run_created", at=now)
            conn.execute(_INSERT_ENTRY, (seq, prev, digest, str(EntryKind.RUN), run_id,
                                         "run_created", now, payload, HASH_VERSION))
            conn.execute(_MOVE_HEAD, (seq, digest))
            made_row = conn.execute(
                "INSERT INTO runs (run_id, seq, playbook, playbook_path, playbook_text, "
                "playbook_sha256, inputs, status, kind, parent_run_id, config_path, created_at, "
                "updated_at, owner_host, owner_pid, owner_boot_id, owner_started, lease_expires) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING *",
                (run_id, seq, playbook, playbook_path, playbook_text, text_sha, inputs_json,
                 str(state), str(run_kind), parent_run_id, config_path, now, now, me.host,
                 me.pid, me.boot_id, me.started, lease))
        return record_of(made_row.fetchone())

    def append(self, event: dict[str, Any]) -> int:
        return self.append_many([event])[0]

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        """The events of one scheduling round in one transaction: the run's row locked, the
        head's row locked, read and written once, the entries sent in one pipeline."""
        checked = checked_events(events)
        if not checked:
            return []
        run_id, now = checked[0].run_id, time.time()
        changes = [wait_change(item.kind, event) for event, item in zip(events, checked,
                                                                         strict=True)]
        with self._write(pipelined=True) as conn:
            row = conn.execute(_RUN_ROW["FOR UPDATE"], (run_id,)).fetchone()
            if row is None:
                raise UnknownRun(run_id, str(self.name))
            # A cancelled run stays so: refusing its events is what guarantees that no step
            # of it runs after the cancellation (the runner journals before it acts).
            status = run_events(RunStatus(row["status"]), checked)
            refuse_held(row, now)
            # The chain head is locked from here to the commit, which goes out with it.
            moved = conn.execute(APPEND, append_args(checked))
            if any(change is not None and change.opens for change in changes):
                first = moved.fetchone()["seq"] - len(checked) + 1  # a wait needs its seq
                for number, change in enumerate(changes):
                    if change is not None:
                        for sql, args in change.statements(run_id, first + number):
                            conn.execute(pg_sql(sql), args)
                moved = None
            else:  # closing waits needs no seq: every statement goes out together
                for change in changes:
                    if change is not None:
                        for sql, args in change.statements(run_id, 0):
                            conn.execute(pg_sql(sql), args)
            if lease_kept(row, status, now, self.lease_seconds):  # the heartbeat renews it
                conn.execute("UPDATE runs SET status = %s, updated_at = %s WHERE run_id = %s",
                             (str(status), checked[-1].at, run_id))
            else:
                self._hold(conn, run_id, self._lease(status), status=status,
                           updated_at=checked[-1].at)
        last = first + len(checked) - 1 if moved is None else moved.fetchone()["seq"]
        return list(range(last - len(checked) + 1, last + 1))

    def _head_of(self, head: Row | None) -> tuple[int, str]:
        """The chain head's seq and hash (GENESIS before the first entry), read `FOR UPDATE`."""
        if head is None:
            raise JournalError(f"journal {self.name}: the chain head record is missing; run "
                               "`crownguard audit verify`")
        return head["seq"], head["hash"] if head["seq"] else GENESIS

    def set_status(self, run_id: str, status: RunStatus | str, *, reason: str | None = None
                   ) -> None:
        state = run_status(status)
        with self._write(pipelined=True) as conn:
            row = self._run_row(conn, run_id, "FOR UPDATE")
            if row["status"] == state and reason is None:
                return
            if row["status"] == RunStatus.CANCELLED and state != RunStatus.CANCELLED:
                raise RunEnded(f"run {run_id} was cancelled: it cannot become {state}")
            self._set_status(conn, row, state, reason)

    def _set_status(self, conn: Any, row: Row, state: RunStatus, reason: str | None) -> None:
        now, me = utc_now(), ProcessIdentity.current()
        payload = journal_json({"status": str(state), "previous": row["status"],
                                 "reason": reason, "writer": {"host": me.host, "pid": me.pid}},
                                "a status change")
        self._chain(conn, EntryKind.STATUS, row["run_id"], "status", now, payload)
        conn.execute("UPDATE runs SET status = %s, updated_at = %s, lease_expires = CASE WHEN "
                     "%s THEN lease_expires ELSE NULL END WHERE run_id = %s",
                     (str(state), now, state == RunStatus.RUNNING, row["run_id"]))

    def claim(self, run_id: str) -> bool:
        with self._write(pipelined=True) as conn:
            row = conn.execute("SELECT * FROM runs WHERE run_id = %s FOR UPDATE SKIP LOCKED",
                               (run_id,)).fetchone()
            if row is None:
                self._run_row(conn, run_id)  # UnknownRun, else another writer has it locked
                return False
            if row["status"] in ENDED or holder_of(row, time.time()) == LeaseHolder.HELD:
                return False
            if row["status"] != RunStatus.RUNNING:
                self._set_status(conn, row, RunStatus.RUNNING, "claimed to resume")
            self._hold(conn, run_id, self._lease(RunStatus.RUNNING))
            return True

    def renew_lease(self, run_id: str) -> bool:
        with self._write(pipelined=True) as conn:
            row = self._run_row(conn, run_id, "FOR UPDATE")
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
        with self._write(pipelined=True) as conn:
            self._run_row(conn, run_id, "FOR SHARE")
            seq = self._chain(conn, EntryKind.APPROVAL, run_id, "approval", at, payload)
            conn.execute("INSERT INTO approvals (seq, run_id, step_id, decision, by_name, "
                         "comment, at, accepted, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, "
                         "%s, %s)", (seq, run_id, step_id, str(choice), by, comment, at,
                                     bool(accepted), reason))
        return Approval(run_id, step_id, choice, by, comment, at, bool(accepted), reason, seq)

    def record_resume_failure(self, run_id: str, kind: ResumeFailureKind | str, reason: str
                              ) -> ResumeFailure:
        what, now, me = ResumeFailureKind(kind), utc_now(), ProcessIdentity.current()
        with self._write(pipelined=True) as conn:
            self._run_row(conn, run_id, "FOR UPDATE")
            conn.execute(
                "INSERT INTO resume_failures (run_id, kind, reason, count, first_at, last_at) "
                "VALUES (%(run)s, %(kind)s, %(reason)s, 1, %(now)s, %(now)s) ON CONFLICT "
                "(run_id) DO UPDATE SET count = CASE WHEN resume_failures.kind = %(kind)s AND "
                "resume_failures.reason = %(reason)s THEN resume_failures.count + 1 ELSE 1 END, "
                "first_at = CASE WHEN resume_failures.kind = %(kind)s AND resume_failures.reason "
                "= %(reason)s THEN resume_failures.first_at ELSE %(now)s END, kind = %(kind)s, "
                "reason = %(reason)s, last_at = %(now)s",
                {"run": run_id, "kind": str(what), "reason": reason, "now": now})
            conn.execute("UPDATE runs SET lease_expires = NULL WHERE run_id = %s AND "
                         "owner_host = %s AND owner_pid = %s", (run_id, me.host, me.pid))
            row = conn.execute("SELECT * FROM resume_failures WHERE run_id = %s",
                               (run_id,)).fetchone()
            return resume_failure_of(row)

    def clear_resume_failure(self, run_id: str) -> None:
        if not self._select("SELECT 1 FROM resume_failures WHERE run_id = %s", (run_id,)):
            return
        with self._write() as conn:
            conn.execute("DELETE FROM resume_failures WHERE run_id = %s", (run_id,))

    # audit -------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        rows = self._select("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1")
        return (rows[0]["seq"], rows[0]["hash"]) if rows else (0, GENESIS)

    def export_jsonl(self, fp: IO[str], run_id: str | None = None, since_seq: int = 0) -> int:
        return write_jsonl(fp, self.entries(run_id, since_seq))

    def verify(self, anchor: tuple[int, str] | None = None,
               max_problems: int | None = 1000) -> list[ChainProblem]:
        with self._read() as conn:
            return verify_database(conn, anchor, max_problems)
