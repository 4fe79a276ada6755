"""The PostgreSQL journal's open waits (see `waits`): the same SQL as SQLite's, in psycopg's
placeholder style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kinds import EventType
from .waits import (
    ANSWERS,
    DUE,
    NEXT,
    OF_RUN,
    OpenWait,
    answered,
    due_args,
    open_wait_of,
    wait_change,
)


def _pg(sql: str) -> str:
    """A statement shared with SQLite (`?` placeholders) in psycopg's style."""
    return sql.replace("?", "%s")


class PostgresOpenWaits:
    if TYPE_CHECKING:
        def _select(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...

    @staticmethod
    def _track_wait(conn: Any, kind: EventType, event: dict[str, Any], run_id: str,
                    seq: int) -> None:
        """Open or close the event's wait, in the event's own transaction."""
        change = wait_change(kind, event)
        if change is not None:
            for sql, args in change.statements(run_id, seq):
                conn.execute(_pg(sql), args)

    def open_waits(self, run_id: str) -> list[OpenWait]:
        return [open_wait_of(row) for row in self._select(_pg(OF_RUN), (run_id,))]

    def due_waits(self, now: float, *, after: OpenWait | None = None, limit: int = 500
                  ) -> list[OpenWait]:
        return [open_wait_of(row) for row in self._select(_pg(DUE),
                                                          due_args(now, after, limit))]

    def next_wait_deadline(self) -> float | None:
        rows = self._select(_pg(NEXT))
        return float(rows[0]["expires_at"]) if rows else None

    def answered_waits(self, after_seq: int = 0, *, limit: int = 500
                       ) -> tuple[list[OpenWait], int]:
        return answered(self._select(_pg(ANSWERS), (int(after_seq), int(limit))), after_seq)
