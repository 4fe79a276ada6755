"""The run journal: durable run state and the tamper-evident audit trail.

`Journal` is the interface (a server database can implement it later); `SQLiteJournal` is the
default, one SQLite file in WAL mode shared safely by threads and processes. The runner hands
every event to the journal (`journal(event)`) *before* it acts on it; `append` returns only once
the event is on disk. Every entry (run created, event, status change, approval) is chained by
hash (see `audit`), so `verify()` can say which entry was edited, removed or reordered.

The journal stores what it is given: callers redact secrets before (the runner does).
See docs/journal.md for the schema, the default path, leases and what verification can prove.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from .audit import (
    GENESIS,
    ChainEntry,
    ChainProblem,
    EntryKind,
    JournalAudit,
    NotCanonical,
    canonical_payload,
    entry_hash,
    sha256_text,
    write_jsonl,
)
from .conductor import EventType, RunStatus
from .errors import CrownguardError

ENV_JOURNAL = "CROWNGUARD_JOURNAL"
SCHEMA_VERSION = 1
DEFAULT_LEASE_SECONDS = 300.0
DEFAULT_BUSY_TIMEOUT = 30.0
FINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class JournalError(CrownguardError):
    """The journal cannot do what was asked (busy, corrupt, newer schema, bad event)."""


class UnknownRun(JournalError):
    """No run with that id is in the journal."""


class RunHeldElsewhere(JournalError):
    """Another live process holds the run's lease: this one must not drive it (it lost it)."""


class RunKind(StrEnum):
    RUN = "run"
    UNDO = "undo"


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def default_journal_path(env: Mapping[str, str] | None = None) -> Path:
    """`$CROWNGUARD_JOURNAL`, else `$XDG_STATE_HOME/crownguard/journal.sqlite`, else
    `~/.local/state/crownguard/journal.sqlite` (XDG: a relative XDG_STATE_HOME is ignored)."""
    env = os.environ if env is None else env
    if env.get(ENV_JOURNAL):
        return Path(env[ENV_JOURNAL]).expanduser()
    state = env.get("XDG_STATE_HOME", "")
    if state and Path(state).is_absolute():
        return Path(state) / "crownguard" / "journal.sqlite"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".local" / "state" / "crownguard" / "journal.sqlite"


# the writer of a run ---------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a Linux process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


_CURRENT: dict[int, ProcessIdentity] = {}


@dataclass(frozen=True)
class ProcessIdentity:
    """Which process writes a run: host, pid, boot id and start time tell a live writer from a
    dead one whose pid was reused. Start time and boot id are known on Linux only."""

    host: str
    pid: int
    boot_id: str = ""
    started: str = ""

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        if pid not in _CURRENT:  # recomputed in a forked child
            stat = _proc_stat(pid)
            _CURRENT[pid] = cls(socket.gethostname(), pid, _boot_id(), stat[1] if stat else "")
        return _CURRENT[pid]

    def alive(self) -> bool | None:
        """True or False for a process on this host; None when it cannot be known (another
        host): then only the lease says whether the run is abandoned."""
        here = ProcessIdentity.current()
        if self.host != here.host or os.name == "nt":  # Windows: os.kill(pid, 0) is Ctrl-C
            return None
        if self.boot_id and here.boot_id and self.boot_id != here.boot_id:
            return False  # the machine rebooted since
        if self == here:
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc: the pid exists, that is all we know
        state, started = stat
        if state in ("Z", "X"):
            return False  # killed, not yet reaped
        return not (self.started and started != self.started)  # else: the pid was reused


# records -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    """A run as the journal knows it (its events come from `events(run_id)`)."""

    run_id: str
    playbook: str
    playbook_path: str | None
    playbook_text: str
    playbook_sha256: str
    inputs: dict[str, Any]
    status: RunStatus
    kind: RunKind
    parent_run_id: str | None
    config_path: str | None
    created_at: str
    updated_at: str
    owner: ProcessIdentity | None
    lease_expires: float | None
    seq: int  # the chained entry that created it

    def to_dict(self, with_text: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["status"], data["kind"] = str(self.status), str(self.kind)
        if not with_text:
            del data["playbook_text"]
        return data


@dataclass(frozen=True)
class Approval:
    """A decision on a waiting step; `accepted` is False when it was refused (and why)."""

    run_id: str
    step_id: str
    decision: ApprovalDecision
    by: str
    comment: str | None
    at: str
    accepted: bool
    reason: str | None
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision": str(self.decision)}


# the interface ---------------------------------------------------------------------------------

class Journal(ABC):
    """Durable run state and audit trail. Implementations must make `append` durable and
    atomic (with its chain link) before it returns, and be safe across threads and processes.
    A journal is also the runner's event sink: `Runner(host, journal=journal)`."""

    def __call__(self, event: dict[str, Any]) -> None:
        self.append(event)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def create_run(self, run_id: str, playbook: str, playbook_text: str, *,
                   inputs: dict[str, Any], playbook_path: str | None = None,
                   kind: RunKind | str = RunKind.RUN, parent_run_id: str | None = None,
                   config_path: str | None = None,
                   status: RunStatus | str = RunStatus.RUNNING) -> RunRecord:
        """Record a new run owned (leased) by this process; inputs are redacted by the caller."""

    @abstractmethod
    def append(self, event: dict[str, Any]) -> int:
        """Store one runner event durably and return its seq. A run_finished or run_cancelled
        event sets the run's status. Raises RunHeldElsewhere if another live process holds the
        run, UnknownRun if there is no such run."""

    @abstractmethod
    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events in the order they were appended (what `Runner.resume` replays)."""

    @abstractmethod
    def entries(self, run_id: str | None = None, since_seq: int = 0) -> Iterator[ChainEntry]:
        """Chain entries in seq order (all kinds), for timelines and export."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """The run, or UnknownRun."""

    @abstractmethod
    def list_runs(self, status: RunStatus | str | None = None, limit: int = 100, *,
                  kind: RunKind | str | None = None, parent_run_id: str | None = None
                  ) -> list[RunRecord]:
        """Runs, newest first."""

    @abstractmethod
    def set_status(self, run_id: str, status: RunStatus | str, *, reason: str | None = None
                   ) -> None:
        """Set a run's status (a chained entry); any status but running frees its lease."""

    @abstractmethod
    def interrupted_runs(self) -> list[RunRecord]:
        """Runs still `running` whose writer is gone or whose lease expired."""

    @abstractmethod
    def claim(self, run_id: str) -> bool:
        """Take the run for this process (to resume it) unless a live process holds it or it
        has finished; sets it `running`. False when it cannot be taken."""

    @abstractmethod
    def renew_lease(self, run_id: str) -> bool:
        """Extend this process's lease on the run (a heartbeat); False if it does not hold it."""

    @abstractmethod
    def record_approval(self, run_id: str, step_id: str, decision: ApprovalDecision | str,
                        by: str, *, comment: str | None = None, accepted: bool = True,
                        reason: str | None = None, at: str | None = None) -> Approval:
        """Record an approval decision, refused ones too (accepted=False with the reason)."""

    @abstractmethod
    def approvals(self, run_id: str) -> list[Approval]:
        """The run's approval decisions in order."""

    @abstractmethod
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last entry, (0, GENESIS) when empty: keep it elsewhere as an
        anchor, it is what proves later that no entry was cut off the end."""

    @abstractmethod
    def verify(self, anchor: tuple[int, str] | None = None,
               max_problems: int | None = 1000) -> list[ChainProblem]:
        """Every edited, removed, reordered or inserted entry found; empty when intact.
        `anchor` is a `head()` kept elsewhere earlier: it catches a cut or rewritten tail."""

    @abstractmethod
    def export_jsonl(self, fp: IO[str], run_id: str | None = None, since_seq: int = 0) -> int:
        """Write entries as JSON lines with their chain fields (for a SIEM); returns the count."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the journal must not be used afterwards."""


def open_journal(path: str | Path | None = None, env: Mapping[str, str] | None = None,
                 **options: Any) -> SQLiteJournal:
    """The journal at `path` (`--journal`), else at `default_journal_path(env)`.

    `CROWNGUARD_JOURNAL_SYNC=NORMAL` trades power-loss durability for ~3x faster appends
    (a process crash still loses nothing); the default is FULL."""
    environ = os.environ if env is None else env
    if environ.get("CROWNGUARD_JOURNAL_SYNC"):
        options.setdefault("synchronous", environ["CROWNGUARD_JOURNAL_SYNC"])
    return SQLiteJournal(path if path is not None else default_journal_path(env), **options)


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


def _holder(row: sqlite3.Row, now: float) -> str:
    """Who holds a run: "mine", "held" (another live process, lease current) or "free"."""
    owner = _owner(row)
    if owner is None or row["lease_expires"] is None or row["lease_expires"] < now:
        return "free"
    if owner == ProcessIdentity.current():
        return "mine"
    return "free" if owner.alive() is False else "held"


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
        return None if status in FINAL_STATUSES else time.time() + self.lease_seconds

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
            if _holder(row, time.time()) == "held":
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
            if row["status"] in FINAL_STATUSES or _holder(row, time.time()) == "held":
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
        return [_record(row) for row in rows if _holder(row, now) == "free"]

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
