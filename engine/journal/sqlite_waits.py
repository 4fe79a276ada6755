"""The SQLite journal's open waits (see `waits`): kept in the transaction of each wait's
event, read by index by the service's timer."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from ..kinds import EventType
from .sqlite_schema import Connection
from .waits import (
    ANSWERS,
    BACKFILL_CANDIDATES,
    DUE,
    NEXT,
    OF_RUN,
    OpenWait,
    answered,
    due_args,
    open_wait_of,
    still_open,
    wait_change,
)


class SQLiteOpenWaits:
    """Mixed into SQLiteJournal: the open_waits table over its connection and transactions."""

    if TYPE_CHECKING:
        _tables: set[str]

        def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

    @staticmethod
    def _track_wait(conn: Connection, kind: EventType, event: dict[str, Any], run_id: str,
                    seq: int) -> None:
        """Open or close the event's wait, in the event's own transaction."""
        change = wait_change(kind, event)
        if change is not None:
            for sql, args in change.statements(run_id, seq):
                conn.execute(sql, args)

    @staticmethod
    def _fill_open_waits(conn: Connection) -> None:
        """The open_waits rows of a journal written before the table (schema 3) existed."""
        for wait in still_open(conn.execute(BACKFILL_CANDIDATES)):
            conn.execute("INSERT OR REPLACE INTO open_waits (run_id, step_id, seq, expires_at) "
                         "VALUES (?, ?, ?, ?)",
                         (wait.run_id, wait.step_id, wait.seq, wait.expires_at))

    def _waits_table(self) -> bool:
        return "open_waits" in self._tables  # not in a schema 2 file opened read-only

    def open_waits(self, run_id: str) -> list[OpenWait]:
        if not self._waits_table():
            return []
        return [open_wait_of(row) for row in self._select(OF_RUN, (run_id,))]

    def due_waits(self, now: float, *, after: OpenWait | None = None, limit: int = 500
                  ) -> list[OpenWait]:
        if not self._waits_table():
            return []
        return [open_wait_of(row) for row in self._select(DUE, due_args(now, after, limit))]

    def next_wait_deadline(self) -> float | None:
        rows = self._select(NEXT) if self._waits_table() else []
        return float(rows[0]["expires_at"]) if rows else None

    def answered_waits(self, after_seq: int = 0, *, limit: int = 500
                       ) -> tuple[list[OpenWait], int]:
        if not self._waits_table():
            return [], after_seq
        return answered(self._select(ANSWERS, (int(after_seq), int(limit))), after_seq)
