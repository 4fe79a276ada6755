"""The SQLite journal's appends: the events of one scheduling round in one transaction, the
chain head read and written once, the run's row updated once, its lease left to the
heartbeat."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import JournalError
from ..kinds import RunStatus
from .audit import GENESIS
from .sqlite_schema import (
    Connection,
    NewEvent,
    checked_events,
    event_rows,
    lease_kept,
    refuse_held,
    run_events,
)


class SQLiteAppends:
    """Mixed into SQLiteJournal: `append` and `append_many`."""

    if TYPE_CHECKING:
        path: Path
        lease_seconds: float

        def _write(self) -> AbstractContextManager[Connection]: ...

        def _run_row(self, conn: Connection, run_id: str) -> sqlite3.Row: ...

        def _hold(self, conn: Connection, run_id: str, lease: float | None, *,
                  status: RunStatus | None = None, updated_at: str | None = None) -> None: ...

        def _lease(self, status: RunStatus) -> float | None: ...

        @staticmethod
        def _track_wait(conn: Connection, kind: Any, event: dict[str, Any], run_id: str,
                        seq: int) -> None: ...

    def append(self, event: dict[str, Any]) -> int:
        return self.append_many([event])[0]

    def append_many(self, events: list[dict[str, Any]]) -> list[int]:
        checked = checked_events(events)
        if not checked:
            return []
        run_id, now = checked[0].run_id, time.time()
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            # A cancelled run stays so: the runner journals before it acts, so refusing its
            # events here is what guarantees that no step of it runs after the cancellation.
            status = run_events(RunStatus(row["status"]), checked)
            refuse_held(row, now)
            seqs = self._chain_events(conn, checked)
            self._touch(conn, row, status, checked[-1].at, now)
            for event, item, seq in zip(events, checked, seqs, strict=True):
                self._track_wait(conn, item.kind, event, run_id, seq)  # open_waits, same txn
        return seqs

    def _chain_events(self, conn: Connection, checked: list[NewEvent]) -> list[int]:
        """Chain a run's events after the head: one read of the head, one write of it."""
        head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        seq, prev = (head["seq"], head["hash"]) if head else (0, GENESIS)
        rows = event_rows(seq, prev, checked)
        try:
            conn.executemany("INSERT INTO entries (seq, prev_hash, hash, kind, run_id, type, "
                             "at, payload, v) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            raise JournalError(f"journal {self.path}: an entry seq from {rows[0][0]} on exists "
                               "beyond the chain head; run `crownguard audit verify`") from None
        conn.execute("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) "
                     "DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                     (rows[-1][0], rows[-1][2]))
        return [r[0] for r in rows]

    def _touch(self, conn: Connection, row: sqlite3.Row, status: RunStatus, at: str,
               now: float) -> None:
        """The run's status and time after its events; its lease only when not `lease_kept`
        (the heartbeat's `renew_lease` keeps it)."""
        if lease_kept(row, status, now, self.lease_seconds):
            conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?",
                         (str(status), at, row["run_id"]))
        else:
            self._hold(conn, row["run_id"], self._lease(status), status=status,
                       updated_at=at)

