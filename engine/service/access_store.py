"""Model access requests: the table beside the journal's, and the state machine over it.

A request lives in `access_requests` beside the journal's tables (its SQLite file, or its
PostgreSQL database, where migration 2 made the table); every change of it is also
one chained journal entry (kind `access`, run id `access:<id>`), written in the same
transaction as the row (`Journal.record_access_event`), so the row and the audit trail cannot
disagree after a crash. A change is a compare-and-set on the row's state under the journal's
write lock (SQLite) or the chain head's row lock (PostgreSQL): of two processes expiring the
same grant, one records it and the other is told. The SQL is written once, with `?`
placeholders and typed NULL checks both databases understand; `_Rows` reads it from either.

    pending --approve (enough approvals)--> approved --grant--> granted --expire--> expired
       |  \\--deny--> denied --override (admin)--> approved        \\--revoke--> revoked
       \\--revoke (withdrawn)--> revoked     approved --revoke--> revoked
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ..errors import CrownguardError, JournalError
from ..journal import Journal, utc_now
from ..journal.postgres import PostgresJournal

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_requests (
    id TEXT PRIMARY KEY, requester TEXT NOT NULL, model TEXT NOT NULL, version TEXT,
    alias TEXT, access TEXT NOT NULL, justification TEXT NOT NULL,
    duration_seconds INTEGER NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, decision TEXT, approvals TEXT NOT NULL DEFAULT '[]',
    approvals_required INTEGER NOT NULL DEFAULT 1, decided_by TEXT, decided_at TEXT,
    granted_at TEXT, expires_at TEXT, revoked_at TEXT, revoked_by TEXT, grant_info TEXT,
    last_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS access_requests_by_state ON access_requests (state, expires_at);
"""


class AccessState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    GRANTED = "granted"
    EXPIRED = "expired"
    REVOKED = "revoked"


class AccessKind(StrEnum):
    READ = "read"
    DOWNLOAD = "download"


class Change(StrEnum):
    """What happened to a request: the label of its journal entry."""

    REQUESTED = "access_requested"
    APPROVAL = "access_approval"      # one approval of several needed; the state stays pending
    APPROVED = "access_approved"
    DENIED = "access_denied"
    OVERRIDDEN = "access_overridden"  # an admin approved a denied request
    GRANTED = "access_granted"
    EXPIRED = "access_expired"
    REVOKED = "access_revoked"


# (from, change) -> to: the one table every change is checked against.
TRANSITIONS: dict[tuple[AccessState, Change], AccessState] = {
    (AccessState.PENDING, Change.APPROVAL): AccessState.PENDING,
    (AccessState.PENDING, Change.APPROVED): AccessState.APPROVED,
    (AccessState.PENDING, Change.DENIED): AccessState.DENIED,
    (AccessState.PENDING, Change.REVOKED): AccessState.REVOKED,
    (AccessState.DENIED, Change.OVERRIDDEN): AccessState.APPROVED,
    (AccessState.APPROVED, Change.GRANTED): AccessState.GRANTED,
    (AccessState.APPROVED, Change.REVOKED): AccessState.REVOKED,
    (AccessState.GRANTED, Change.EXPIRED): AccessState.EXPIRED,
    (AccessState.GRANTED, Change.REVOKED): AccessState.REVOKED,
}
FINAL = frozenset({AccessState.EXPIRED, AccessState.REVOKED})


class AccessError(CrownguardError):
    """A request that cannot be made or changed as asked (the message says why)."""


class UnknownRequest(AccessError):
    pass


class RegistryError(AccessError):
    """The model registry failed or refused (down, wrong credentials, no auth app)."""


class AccessForbidden(AccessError):
    """The caller may not make this change (not an approver, not the requester...)."""


class TransitionRefused(AccessError):
    """The request is not in a state that allows the change (perhaps another process changed
    it first)."""


@dataclass(frozen=True)
class AccessRequest:
    id: str
    requester: str
    model: str
    version: str | None
    alias: str | None
    access: AccessKind
    justification: str
    duration_seconds: int
    state: AccessState
    created_at: str
    updated_at: str
    decision: dict[str, Any] | None = None
    approvals: tuple[dict[str, Any], ...] = ()
    approvals_required: int = 1
    decided_by: str | None = None
    decided_at: str | None = None
    granted_at: str | None = None
    expires_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    grant: dict[str, Any] | None = None
    last_seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "requester": self.requester, "model": self.model,
                "version": self.version, "alias": self.alias, "access": str(self.access),
                "justification": self.justification,
                "duration_seconds": self.duration_seconds, "state": str(self.state),
                "created_at": self.created_at, "updated_at": self.updated_at,
                "decision": self.decision, "approvals": list(self.approvals),
                "approvals_required": self.approvals_required, "decided_by": self.decided_by,
                "decided_at": self.decided_at, "granted_at": self.granted_at,
                "expires_at": self.expires_at, "revoked_at": self.revoked_at,
                "revoked_by": self.revoked_by, "grant": self.grant, "last_seq": self.last_seq}


@dataclass
class NewRequest:
    """What a person asks for, before any decision."""

    requester: str
    model: str
    access: AccessKind | str
    justification: str
    duration_seconds: int
    version: str | None = None
    alias: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _request_of(row: Any) -> AccessRequest:
    def loads(text: str | None) -> Any:
        return None if text is None else json.loads(text)

    return AccessRequest(
        row["id"], row["requester"], row["model"], row["version"], row["alias"],
        AccessKind(row["access"]), row["justification"], int(row["duration_seconds"]),
        AccessState(row["state"]), row["created_at"], row["updated_at"], loads(row["decision"]),
        tuple(loads(row["approvals"]) or ()), int(row["approvals_required"]),
        row["decided_by"], row["decided_at"], row["granted_at"], row["expires_at"],
        row["revoked_at"], row["revoked_by"], loads(row["grant_info"]), int(row["last_seq"]))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Columns a change may set beside the state (anything else is refused: no SQL from callers).
_SETTABLE = ("decision", "approvals", "approvals_required", "decided_by", "decided_at",
             "granted_at", "expires_at", "revoked_at", "revoked_by", "grant_info")


class _Rows(Protocol):
    """Where the requests are read from; `sql` takes `?` placeholders, rows index by name."""

    where: str

    def sql(self, text: str) -> str: ...

    def rows(self, text: str, args: tuple[Any, ...] = ()) -> list[Any]: ...

    def close(self) -> None: ...


class _SQLiteRows:
    """Reads from the journal's SQLite file on a connection of its own."""

    def __init__(self, path: Path, busy_timeout: float):
        self.where = str(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the access requests in {path}: {exc}") from None

    def sql(self, text: str) -> str:
        return text

    def rows(self, text: str, args: tuple[Any, ...] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._db.execute(text, args).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"access requests in {self.where}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _PostgresRows:
    """Reads through the PostgreSQL journal's pool (the table is one of its migrations)."""

    def __init__(self, journal: PostgresJournal):
        self.where = journal.name
        self._journal = journal

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def rows(self, text: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return list(self._journal._select(self.sql(text), args))

    def close(self) -> None:
        pass  # the pool is the journal's


class AccessStore:
    """Access requests beside the journal's tables; every change chained by the journal."""

    def __init__(self, journal: Journal, path: str | Path | None = None, *,
                 busy_timeout: float = 30.0):
        self.journal = journal
        located = path if path is not None else getattr(journal, "path", None)
        if isinstance(journal, PostgresJournal):
            self._store: _Rows = _PostgresRows(journal)
            self.path: Path | None = None
        elif located is None:
            raise JournalError(f"{type(journal).__name__} keeps no access requests: use a "
                               "SQLite or PostgreSQL journal")
        else:
            self.path = Path(located)
            self._store = _SQLiteRows(self.path, busy_timeout)

    def close(self) -> None:
        self._store.close()

    # reading -----------------------------------------------------------------------------------

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._store.rows(sql, args)

    def get(self, request_id: str) -> AccessRequest:
        """The request with this id, or the one whose id starts with it (8 characters or
        more, unique)."""
        rows = self._rows("SELECT * FROM access_requests WHERE id = ?", (request_id,))
        if not rows and len(request_id) >= 8:
            rows = self._rows("SELECT * FROM access_requests WHERE substr(id, 1, "
                              "length(CAST(? AS TEXT))) = ? LIMIT 2", (request_id, request_id))
            if len(rows) > 1:
                raise UnknownRequest(f"access request id '{request_id}' is ambiguous: give "
                                     "more of it")
        if not rows:
            raise UnknownRequest(f"no access request '{request_id}'")
        return _request_of(rows[0])

    def find(self, *, state: AccessState | str | None = None, requester: str | None = None,
             model: str | None = None, limit: int = 100) -> list[AccessRequest]:
        rows = self._rows(
            "SELECT * FROM access_requests WHERE (CAST(? AS TEXT) IS NULL OR state = ?) AND "
            "(CAST(? AS TEXT) IS NULL OR requester = ?) AND (CAST(? AS TEXT) IS NULL OR "
            "model = ?) ORDER BY created_at DESC, id LIMIT ?",
            (*[wanted for wanted in (None if state is None else str(AccessState(state)),
                                     requester, model) for _ in (0, 1)], int(limit)))
        return [_request_of(row) for row in rows]

    def due(self, now: datetime | None = None) -> list[AccessRequest]:
        """Granted requests whose time is up (oldest deadline first)."""
        moment = format_time(now or datetime.now(UTC))
        rows = self._rows("SELECT * FROM access_requests WHERE state = ? AND expires_at <= ? "
                          "ORDER BY expires_at", (str(AccessState.GRANTED), moment))
        return [_request_of(row) for row in rows]

    def next_deadline(self) -> datetime | None:
        rows = self._rows("SELECT min(expires_at) AS at FROM access_requests WHERE state = ?",
                          (str(AccessState.GRANTED),))
        return parse_time(rows[0]["at"]) if rows and rows[0]["at"] else None

    # writing -----------------------------------------------------------------------------------

    def create(self, new: NewRequest, *, decision: dict[str, Any] | None = None,
               approvals_required: int = 1, request_id: str | None = None) -> AccessRequest:
        """Record a new pending request with the policy's decision (and its journal entry)."""
        rid = request_id or secrets.token_hex(8)
        now = utc_now()
        access = AccessKind(new.access)
        payload = {"requester": new.requester, "model": new.model, "version": new.version,
                   "alias": new.alias, "access": str(access),
                   "justification": new.justification,
                   "duration_seconds": int(new.duration_seconds), "state": "pending",
                   "decision": decision, "approvals_required": approvals_required, **new.extra}

        def insert(conn: Any, seq: int) -> None:
            conn.execute(self._store.sql(
                "INSERT INTO access_requests (id, requester, model, version, alias, access, "
                "justification, duration_seconds, state, created_at, updated_at, last_seq, "
                "decision, approvals_required) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                (rid, new.requester, new.model, new.version, new.alias, str(access),
                 new.justification, int(new.duration_seconds), str(AccessState.PENDING), now,
                 now, seq, None if decision is None else json.dumps(decision),
                 int(approvals_required)))

        self.journal.record_access_event(rid, str(Change.REQUESTED), payload, beside=insert)
        return self.get(rid)

    def change(self, request_id: str, change: Change, by: str, *, reason: str | None = None,
               expect: AccessState | None = None, **columns: Any) -> AccessRequest:
        """Apply one change: checked against TRANSITIONS, compare-and-set on the state the
        request had when read (or `expect`), chained with `by`, `reason` and the columns."""
        current = self.get(request_id)
        before = expect or current.state
        after = TRANSITIONS.get((before, change))
        if after is None:
            raise TransitionRefused(f"access request {current.id} is {current.state}: it "
                                    f"cannot be {_WORDS[change]}")
        unknown = sorted(set(columns) - set(_SETTABLE))
        if unknown:
            raise AccessError(f"cannot set {', '.join(unknown)} of an access request")
        stored = {k: json.dumps(v) if k in ("decision", "approvals", "grant_info") else v
                  for k, v in columns.items()}
        now = utc_now()
        payload = {"by": by, "reason": reason, "from": str(before), "to": str(after),
                   **{k: v for k, v in columns.items() if k != "approvals"}}
        if "approvals" in columns:
            payload["approvals"] = columns["approvals"]

        def update(conn: Any, seq: int) -> None:
            sets = "".join(f", {k} = ?" for k in stored)  # names from _SETTABLE only
            cursor = conn.execute(self._store.sql(
                f"UPDATE access_requests SET state = ?, updated_at = ?, last_seq = ?{sets} "  # noqa: S608
                "WHERE id = ? AND state = ?"),
                (str(after), now, seq, *stored.values(), current.id, str(before)))
            if cursor.rowcount != 1:  # changed by someone else since it was read
                raise TransitionRefused(f"access request {current.id} is no longer {before}: "
                                        f"it cannot be {_WORDS[change]}")

        self.journal.record_access_event(current.id, str(change), payload, beside=update)
        return self.get(current.id)

    def history(self, request_id: str) -> list[dict[str, Any]]:
        """The request's journal entries, oldest first."""
        rid = self.get(request_id).id
        return [{"seq": e.seq, "type": e.type, "at": e.at, "payload": e.payload}
                for e in self.journal.entries(f"access:{rid}")]


_WORDS = {Change.REQUESTED: "requested", Change.APPROVAL: "approved",
          Change.APPROVED: "approved", Change.DENIED: "denied", Change.OVERRIDDEN: "overridden",
          Change.GRANTED: "granted", Change.EXPIRED: "expired", Change.REVOKED: "revoked"}


def expiry(granted_at: datetime, duration_seconds: int) -> datetime:
    return granted_at + timedelta(seconds=duration_seconds)
